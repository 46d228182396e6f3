# ctest script behind the `readme_snippets` test:
#   cmake -DSOURCE_DIR=<msgport source dir> -P ReadmeSnippets.cmake
# Every ```cpp and ```cmake block in README.md must be quoted verbatim from a file that a test
# builds and runs: a source or CMakeLists.txt under examples/ or tests/ (examples run as tests;
# tests/consumer and examples/hello are built against an installed msgport by install_consumer).
# Shell blocks (```sh) are not checked. A block that is no longer quoted from anywhere fails,
# with its line in README.md.
cmake_minimum_required(VERSION 3.25)

file(READ "${SOURCE_DIR}/README.md" readme)
file(GLOB_RECURSE sources LIST_DIRECTORIES false
  "${SOURCE_DIR}/examples/*.cc" "${SOURCE_DIR}/examples/*.h" "${SOURCE_DIR}/examples/*CMakeLists.txt"
  "${SOURCE_DIR}/tests/*.cc" "${SOURCE_DIR}/tests/*.h" "${SOURCE_DIR}/tests/*CMakeLists.txt")
set(texts)
set(count 0)
foreach(f IN LISTS sources)
  file(READ "${f}" text_${count})
  math(EXPR count "${count} + 1")
endforeach()

set(rest "${readme}")
set(offset 0)
set(checked 0)
set(failed 0)
while(TRUE)
  string(REGEX MATCH "(^|\n)```([A-Za-z+]*)\n" open "${rest}")
  if(open STREQUAL "")
    break()
  endif()
  set(lang "${CMAKE_MATCH_2}")
  string(FIND "${rest}" "${open}" at)
  string(LENGTH "${open}" open_len)
  math(EXPR body_at "${at} + ${open_len}")
  string(SUBSTRING "${rest}" ${body_at} -1 after)
  string(FIND "${after}" "\n```\n" close)
  if(close EQUAL -1)
    string(FIND "${after}" "\n```" close)  # the last line of the file
  endif()
  if(close EQUAL -1)
    message(FATAL_ERROR "readme_snippets: a fenced block in README.md is never closed")
  endif()
  math(EXPR body_len "${close} + 1")  # with its last newline
  string(SUBSTRING "${after}" 0 ${body_len} body)
  string(SUBSTRING "${readme}" 0 ${offset} before)
  string(SUBSTRING "${rest}" 0 ${at} before_here)
  string(REGEX MATCHALL "\n" lines "${before}${before_here}${open}")
  list(LENGTH lines line)
  math(EXPR line "${line} + 1")
  if(lang MATCHES "^(cpp|c\\+\\+|cmake)$")
    math(EXPR checked "${checked} + 1")
    set(found FALSE)
    math(EXPR last "${count} - 1")
    foreach(i RANGE ${last})
      string(FIND "${text_${i}}" "${body}" pos)
      if(NOT pos EQUAL -1)
        set(found TRUE)
        break()
      endif()
    endforeach()
    if(NOT found)
      message(SEND_ERROR
        "readme_snippets: README.md:${line}: this ```${lang} block is not quoted verbatim from "
        "any file under examples/ or tests/:\n${body}")
      math(EXPR failed "${failed} + 1")
    endif()
  elseif(NOT lang MATCHES "^(sh|console|text)$")
    message(SEND_ERROR "readme_snippets: README.md:${line}: a block needs a language "
      "(cpp or cmake, which are checked; sh or text, which are not); it says '${lang}'")
    math(EXPR failed "${failed} + 1")
  endif()
  math(EXPR next "${body_at} + ${close} + 4")
  string(LENGTH "${rest}" rest_len)
  if(next GREATER rest_len)
    set(next ${rest_len})
  endif()
  string(SUBSTRING "${rest}" ${next} -1 rest)
  math(EXPR offset "${offset} + ${next}")
endwhile()

if(failed GREATER 0)
  message(FATAL_ERROR "readme_snippets: ${failed} of the README's blocks are not checked code")
endif()
if(checked EQUAL 0)
  message(FATAL_ERROR "readme_snippets: found no ```cpp or ```cmake block in README.md")
endif()
message(STATUS "readme_snippets: all ${checked} cpp/cmake blocks of README.md are quoted from built files")
