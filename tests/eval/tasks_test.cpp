// Row formats -> lm-eval requests. Expected prompts were produced by
// lm-evaluation-harness v0.4's own code (hellaswag utils.preprocess,
// str.capitalize, the task templates) run on the same rows in Python 3.11.
#include <gtest/gtest.h>

#include "eval/python_text.h"
#include "linearpatch/core/error.h"
#include "linearpatch/eval/tasks.h"

namespace lp {
namespace {

std::string error_of(const std::string& name, const std::string& rows) {
  try {
    parse_task(name, rows, "rows.jsonl");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(PythonText, StripsUnicodeWhitespaceAndCountsCodePoints) {
  EXPECT_EQ(pystr::rstrip("a b\u3000\u00a0 \n"), "a b");
  EXPECT_EQ(pystr::strip("\u2003 x \u2029"), "x");
  EXPECT_EQ(pystr::strip(" \t\n"), "");
  EXPECT_EQ(pystr::length("caf\u00e9 \U0001F600"), 6);
}

TEST(PythonText, CapitalizeIsTitleCaseThenLowerCase) {
  EXPECT_EQ(pystr::capitalize("hELLO wORLD"), "Hello world");
  EXPECT_EQ(pystr::capitalize("\u00dftra\u00dfe"), "Sstra\u00dfe");
  EXPECT_EQ(pystr::capitalize("\u01c6UNGLA"), "\u01c5ungla");
  EXPECT_EQ(pystr::capitalize("\u039f\u0394\u039f\u03a3 \u03a3\u0391"), "\u039f\u03b4\u03bf\u03c2 \u03c3\u03b1");
  EXPECT_EQ(pystr::capitalize("\u0130STANBUL"), "\u0130stanbul");
  EXPECT_EQ(pystr::capitalize("\ufb01NAL"), "Final");
  EXPECT_EQ(pystr::capitalize("\u00e9COLE"), "\u00c9cole");
  EXPECT_EQ(pystr::capitalize(""), "");
}

TEST(Tasks, HellaswagPreprocessesLikeLmEval) {
  const auto task = parse_task(
      "hellaswag",
      R"({"activity_label": "Home and Garden", "ctx_a": "  A man [title] waters the lawn [step] with care", )"
      R"("ctx_b": "tHE HOSE  IS  green [x", "endings": [" then [header] he stops.  ", "he [a\nb] goes   home "], "label": "1"})",
      "h.jsonl");
  ASSERT_EQ(task.rows.size(), 1u);
  const auto& row = task.rows[0];
  EXPECT_EQ(row.gold, 1);
  ASSERT_EQ(row.requests.size(), 2u);
  EXPECT_EQ(row.requests[0].context, "Home and Garden:  A man. waters the lawn with care The hose is green [x");
  EXPECT_EQ(row.requests[0].continuation, " then he stops.");
  EXPECT_EQ(row.requests[1].continuation, " he [a\nb] goes  home");
  EXPECT_EQ(row.choice_chars, (std::vector<int64_t>{14, 19}));
  EXPECT_TRUE(task.has_acc_norm);
}

TEST(Tasks, PiqaArcAndBoolqPrompts) {
  const auto piqa = parse_task("piqa", R"({"goal": "Open a jar", "sol1": "twist", "sol2": "pull", "label": 1})", "p");
  EXPECT_EQ(piqa.rows[0].requests[1].context, "Question: Open a jar\nAnswer:");
  EXPECT_EQ(piqa.rows[0].requests[1].continuation, " pull");
  EXPECT_EQ(piqa.rows[0].gold, 1);

  const auto arc = parse_task("arc_challenge",
                              R"({"question": "Why?", "choices": {"text": ["x", "yy", "zzz"], "label": ["A", "B", "C"]}, "answerKey": "C"})"
                              "\n\n"
                              R"({"question": "How?", "choices": {"text": ["1", "2"], "label": ["1", "2"]}, "answerKey": "1"})",
                              "a");
  ASSERT_EQ(arc.rows.size(), 2u);
  EXPECT_EQ(arc.rows[0].gold, 2);
  EXPECT_EQ(arc.rows[0].requests[0].context, "Question: Why?\nAnswer:");
  EXPECT_EQ(arc.rows[0].choice_chars, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(arc.rows[1].gold, 0);
  EXPECT_EQ(arc.rows[1].index, 2) << "the 0-based line number, blank lines counted";

  const auto boolq = parse_task("boolq", R"({"passage": "Sky is blue.", "question": "is the sky blue", "label": 1})", "b");
  EXPECT_EQ(boolq.rows[0].requests[0].context, "Sky is blue.\nQuestion: is the sky blue?\nAnswer:");
  EXPECT_EQ(boolq.rows[0].requests[0].continuation, " no");
  EXPECT_EQ(boolq.rows[0].requests[1].continuation, " yes");
  EXPECT_FALSE(boolq.has_acc_norm);
}

TEST(Tasks, WinograndeScoresOneContinuationAfterTwoContexts) {
  const auto task =
      parse_task("winogrande", R"({"sentence": "The cup beat the _ because it was  big. ", "option1": "jug", "option2": "bowl", "answer": "2"})", "w");
  const auto& row = task.rows[0];
  EXPECT_EQ(row.gold, 1);
  EXPECT_EQ(row.requests[0].context, "The cup beat the jug");
  EXPECT_EQ(row.requests[1].context, "The cup beat the bowl");
  EXPECT_EQ(row.requests[0].continuation, " because it was  big.");
  EXPECT_EQ(row.requests[1].continuation, row.requests[0].continuation);
  EXPECT_FALSE(task.has_acc_norm);
}

TEST(Tasks, GenericRows) {
  const auto task = parse_task("mc", R"({"context": "2 + 2 =", "choices": ["4", "5", "22"], "gold": 0})", "m");
  EXPECT_EQ(task.rows[0].requests[2].context, "2 + 2 =");
  EXPECT_EQ(task.rows[0].requests[2].continuation, " 22");
  EXPECT_EQ(task.rows[0].gold, 0);
}

TEST(Tasks, BadRowsNameTheFileLineAndField) {
  const std::string good = R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 0})";
  EXPECT_EQ(error_of("piqa", good + "\n" + R"({"goal": "g", "sol1": "a", "label": 0})"),
            "rows.jsonl:2: field \"sol2\": missing");
  EXPECT_EQ(error_of("piqa", R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 2})"),
            "rows.jsonl:1: field \"label\": 2 is out of range for 2 choices");
  EXPECT_EQ(error_of("piqa", R"({"goal": "g", "sol1": "a", "sol2": "b", "label": "x"})"),
            "rows.jsonl:1: field \"label\": expected an integer or a string of digits, found \"x\"");
  EXPECT_EQ(error_of("piqa", R"({"goal": 3, "sol1": "a", "sol2": "b", "label": 0})"),
            "rows.jsonl:1: field \"goal\": expected a string, found 3");
  EXPECT_EQ(error_of("arc_easy", R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"})"),
            "rows.jsonl:1: field \"answerKey\": \"E\" is not one of choices.label");
  EXPECT_EQ(error_of("winogrande", R"({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"})"),
            "rows.jsonl:1: field \"sentence\": has no \"_\" to fill in");
  EXPECT_EQ(error_of("hellaswag", R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x"], "label": "0"})"),
            "rows.jsonl:1: field \"endings\": expected at least 2 choices, found 1");
  EXPECT_EQ(error_of("mc", "[1]"), "rows.jsonl:1: expected a JSON object, found [1]");
  EXPECT_EQ(error_of("mc", "\n \n"), "rows.jsonl: no rows");
  EXPECT_EQ(error_of("lambada", good), "rows.jsonl: unknown task 'lambada' (known: " + task_names() + ")");
}

TEST(Tasks, SpecIsNameEqualsFile) {
  const auto spec = parse_task_spec("arc_easy=dir/a=b.jsonl");
  EXPECT_EQ(spec.name, "arc_easy");
  EXPECT_EQ(spec.file, "dir/a=b.jsonl");
  EXPECT_THROW(parse_task_spec("hellaswag"), InputError);
  EXPECT_THROW(parse_task_spec("=file"), InputError);
  EXPECT_THROW(parse_task_spec("copa=x.jsonl"), InputError);
}

}  // namespace
}  // namespace lp
