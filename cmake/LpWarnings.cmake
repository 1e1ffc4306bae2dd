function(lp_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(LP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Option parsing, printing and tests run no tensor arithmetic of their own,
# and -O3 doubles their compile time (a CLI file: 27 s at -O3, 13 s at -O1
# on CI's 2 cores), which is most of a clean build. The library stays -O3.
function(lp_compile_for_build_speed target)
  if(CMAKE_BUILD_TYPE STREQUAL "Release")
    target_compile_options(${target} PRIVATE -O1)
  endif()
endfunction()
