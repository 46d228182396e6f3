# ctest script behind the `umbrella_header` test:
#   cmake -DSOURCE_DIR=<msgport source dir> -P UmbrellaHeader.cmake
# Fails naming every public header under include/msgport/ that <msgport/msgport.h> does not
# include, so that a header added to a layer cannot be left out of the umbrella.
cmake_minimum_required(VERSION 3.25)
if(NOT DEFINED SOURCE_DIR)
  message(FATAL_ERROR "umbrella_header: -DSOURCE_DIR=... is required")
endif()
file(READ "${SOURCE_DIR}/include/msgport/msgport.h" umbrella)
file(GLOB_RECURSE headers RELATIVE "${SOURCE_DIR}/include" "${SOURCE_DIR}/include/msgport/*/*.h")
set(missing)
foreach(h IN LISTS headers)
  string(FIND "${umbrella}" "#include <${h}>" at)
  if(at EQUAL -1)
    list(APPEND missing "${h}")
  endif()
endforeach()
if(missing)
  list(JOIN missing "\n  " text)
  message(FATAL_ERROR "umbrella_header: include/msgport/msgport.h does not include:\n  ${text}")
endif()
list(LENGTH headers n)
message(STATUS "umbrella_header: all ${n} public headers are in msgport/msgport.h")
