// Strict JSON parsing for the files linearpatch reads (safetensors headers,
// index files, config.json, aliases.json), shared by the io and config modules.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "linearpatch/core/error.h"

namespace lp::io {

// A JSON value shortened for error messages, so a hostile file cannot make
// a message megabytes long.
template <typename Json>
std::string json_excerpt(const Json& value, size_t max_chars = 60) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...";
  return text;
}

// Parses `text` and throws InputError naming `source` when it is not JSON,
// when an object repeats a key (nlohmann would silently keep the last one,
// hiding e.g. a second tensor entry), or when containers nest deeper than
// `max_depth` (the top-level value is depth 1). The depth check runs while
// parsing, so hostile nesting is refused before it costs memory.
// `byte_offset` is added to error positions when `text` starts inside a file.
template <typename Json = nlohmann::json>
Json parse_json_strict(std::string_view text, const std::string& source, int max_depth, uint64_t byte_offset = 0) {
  struct Frame {
    std::set<std::string> keys;
    std::string key;
  };
  std::vector<Frame> frames;
  // The keys leading to the innermost `depth` containers.
  auto location = [&frames](size_t depth) {
    std::string where;
    for (size_t i = 0; i < depth; ++i) {
      if (frames[i].key.empty()) continue;
      where += where.empty() ? " in '" : "' > '";
      where += frames[i].key;
    }
    return where.empty() ? where : where + "'";
  };
  using Event = typename Json::parse_event_t;
  typename Json::parser_callback_t callback = [&](int, Event event, Json& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        if (static_cast<int>(frames.size()) >= max_depth) {
          throw InputError(source + ": JSON nested deeper than " + std::to_string(max_depth) + " levels" +
                           location(frames.size()));
        }
        frames.emplace_back();
        break;
      case Event::object_end:
      case Event::array_end:
        frames.pop_back();
        break;
      case Event::key: {
        Frame& frame = frames.back();
        frame.key = parsed.template get<std::string>();
        if (!frame.keys.insert(frame.key).second) {
          throw InputError(source + ": duplicate key '" + frame.key + "'" + location(frames.size() - 1));
        }
        break;
      }
      case Event::value:
        break;
    }
    return true;
  };
  constexpr size_t kMaxDetail = 300;
  try {
    return Json::parse(text.begin(), text.end(), callback);
  } catch (const typename Json::parse_error& e) {
    throw InputError(source + ": invalid JSON near byte " + std::to_string(byte_offset + e.byte) + ": " +
                     std::string(e.what()).substr(0, kMaxDetail));
  } catch (const typename Json::exception& e) {
    throw InputError(source + ": invalid JSON: " + std::string(e.what()).substr(0, kMaxDetail));
  }
}

}  // namespace lp::io
