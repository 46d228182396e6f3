# ctest script behind the `install_consumer` test:
#   cmake -DBUILD_DIR=<msgport build dir> -DSOURCE_DIR=<msgport source dir> -DCXX=<c++ compiler>
#         [-DCONFIG=<build type>] [-DSAN_FLAGS=<sanitizer flags>] -P InstallConsumerTest.cmake
# Installs BUILD_DIR into a scratch prefix, configures tests/consumer against that prefix only,
# builds it with Ninja and runs it. Any failing step fails the test.
cmake_minimum_required(VERSION 3.25)

foreach(var BUILD_DIR SOURCE_DIR CXX)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_consumer: -D${var}=... is required")
  endif()
endforeach()

set(work_dir "${BUILD_DIR}/install-consumer")
set(prefix "${work_dir}/prefix")
set(consumer_build "${work_dir}/build")
file(REMOVE_RECURSE "${work_dir}")
file(MAKE_DIRECTORY "${work_dir}")

function(run_step name)
  message(STATUS "install_consumer: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "install_consumer: step '${name}' FAILED (result: ${rc})")
  endif()
endfunction()

set(config_args)
set(build_type_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(config_args --config "${CONFIG}")
  set(build_type_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
set(flag_args)
if(NOT "${SAN_FLAGS}" STREQUAL "")
  # The installed libraries are instrumented; the consumer must link the sanitizer runtimes too.
  string(REPLACE ";" " " san_flags "${SAN_FLAGS}")
  set(flag_args "-DCMAKE_CXX_FLAGS=${san_flags}" "-DCMAKE_EXE_LINKER_FLAGS=${san_flags}")
endif()

run_step(install
  "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" ${config_args})

run_step(configure
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer" -B "${consumer_build}" -G Ninja
  "-DCMAKE_PREFIX_PATH=${prefix}"
  "-DCMAKE_CXX_COMPILER=${CXX}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  ${build_type_args} ${flag_args})

# Make sure the package came from the scratch prefix and not from somewhere else on the system.
file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^msgport_DIR:")
string(REGEX REPLACE "^msgport_DIR:[A-Z]+=" "" found_dir "${found_dir}")
file(REAL_PATH "${prefix}" real_prefix)
if(EXISTS "${found_dir}")
  file(REAL_PATH "${found_dir}" found_dir)
endif()
string(FIND "${found_dir}" "${real_prefix}/" pos)
if(NOT pos EQUAL 0)
  message(FATAL_ERROR
    "install_consumer: msgport was found in '${found_dir}', not in the scratch prefix '${real_prefix}'")
endif()

run_step(build "${CMAKE_COMMAND}" --build "${consumer_build}")
run_step(run "${consumer_build}/msgport_consumer")
message(STATUS "install_consumer: OK (package from ${found_dir})")
