# ctest script behind the `install_consumer` test (label `install`):
#   cmake -DBUILD_DIR=<msgport build dir> -DSOURCE_DIR=<msgport source dir> -DCXX=<c++ compiler>
#         [-DLIBDIR=<lib dir under the prefix>] [-DVERSION=<msgport version>] [-DCONFIG=<build type>]
#         [-DSAN_FLAGS=<sanitizer flags>] -P InstallConsumerTest.cmake
# Installs BUILD_DIR into a scratch prefix, then builds and runs three consumers against it:
#   (a) tests/consumer/ports: find_package(msgport 0.2 COMPONENTS ports) on a machine view where
#       Abseil and liburing cannot be found (find_package disabled for both, and pkg-config sees
#       no .pc file), linking msgport::ports only;
#   (b) examples/hello, the README's project: find_package(msgport 0.2), msgport::msgport, a
#       runtime round trip and a write through io;
#   (c) a plain compiler line with pkg-config: examples/hello/main.cc with msgport.pc, and
#       tests/consumer/ports/main.cc with msgport-ports.pc seeing no other .pc file.
# And probes the package config (tests/consumer/probe): COMPONENTS io finds its dependencies,
# version 9.0 and an unknown component are refused, and COMPONENTS runtime fails in view (a).
# Any failing step fails the test.
cmake_minimum_required(VERSION 3.25)

foreach(var BUILD_DIR SOURCE_DIR CXX)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_consumer: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED LIBDIR OR LIBDIR STREQUAL "")
  set(LIBDIR lib)
endif()

set(work_dir "${BUILD_DIR}/install-consumer")
set(prefix "${work_dir}/prefix")
set(no_pc_dir "${work_dir}/no-pkgconfig")  # an empty pkg-config search path
file(REMOVE_RECURSE "${work_dir}")
file(MAKE_DIRECTORY "${work_dir}" "${no_pc_dir}")
file(REAL_PATH "${work_dir}" work_dir)
file(REAL_PATH "${prefix}" prefix)
set(pc_dir "${prefix}/${LIBDIR}/pkgconfig")

find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG_EXECUTABLE)
  message(FATAL_ERROR "install_consumer: pkg-config is not installed (tools/deps.sh installs it)")
endif()

# run_step(<name> <command...>): runs the command; fails the test unless it succeeds.
function(run_step name)
  message(STATUS "install_consumer: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "install_consumer: step '${name}' FAILED (result: ${rc})")
  endif()
endfunction()

# expect_failure(<name> <regex> <command...>): the command must fail and say something matching
# <regex>.
function(expect_failure name regex)
  message(STATUS "install_consumer: ${name} (must fail)")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc STREQUAL "0")
    message(FATAL_ERROR "install_consumer: step '${name}' succeeded but must fail:\n${out}")
  endif()
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR
      "install_consumer: step '${name}' failed, but its output does not match '${regex}':\n${out}")
  endif()
endfunction()

# capture(<var> <command...>): runs the command, fails the test unless it succeeds, and sets
# <var> to its stdout (stripped).
function(capture var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "install_consumer: '${ARGN}' FAILED (result: ${rc})")
  endif()
  set(${var} "${out}" PARENT_SCOPE)
endfunction()

set(config_args)
set(build_type_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(config_args --config "${CONFIG}")
  set(build_type_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
set(flag_args)
set(san_flags "")
if(NOT "${SAN_FLAGS}" STREQUAL "")
  # The installed libraries are instrumented; the consumers must link the sanitizer runtimes too.
  string(REPLACE ";" " " san_flags "${SAN_FLAGS}")
  set(flag_args "-DCMAKE_CXX_FLAGS=${san_flags}" "-DCMAKE_EXE_LINKER_FLAGS=${san_flags}")
endif()

# cmake -S <src> -B <build> for a consumer, seeing only the scratch prefix.
set(consumer_args
  -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${build_type_args} ${flag_args})
# The machine view of consumer (a): Abseil and liburing cannot be found, by CMake or pkg-config.
set(hidden_env ${CMAKE_COMMAND} -E env --unset=PKG_CONFIG_PATH "PKG_CONFIG_LIBDIR=${no_pc_dir}")
set(hidden_args -DCMAKE_DISABLE_FIND_PACKAGE_absl=ON -DCMAKE_DISABLE_FIND_PACKAGE_liburing=ON)

# check_from_prefix(<consumer build dir>): msgport came from the scratch prefix, not elsewhere.
function(check_from_prefix build)
  file(STRINGS "${build}/CMakeCache.txt" found_dir REGEX "^msgport_DIR:")
  string(REGEX REPLACE "^msgport_DIR:[A-Z]+=" "" found_dir "${found_dir}")
  if(EXISTS "${found_dir}")
    file(REAL_PATH "${found_dir}" found_dir)
  endif()
  string(FIND "${found_dir}" "${prefix}/" pos)
  if(NOT pos EQUAL 0)
    message(FATAL_ERROR
      "install_consumer: msgport was found in '${found_dir}', not in the scratch prefix '${prefix}'")
  endif()
endfunction()

run_step(install "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" ${config_args})

# (a) COMPONENTS ports, with neither Abseil nor liburing to be found.
set(build_a "${work_dir}/ports")
run_step("(a) configure COMPONENTS ports without Abseil and liburing"
  ${hidden_env} "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/ports" -B "${build_a}"
  ${consumer_args} ${hidden_args})
check_from_prefix("${build_a}")
run_step("(a) build" "${CMAKE_COMMAND}" --build "${build_a}")
run_step("(a) run" "${build_a}/msgport_ports_consumer")
# The same view really hides them: COMPONENTS runtime cannot be found there.
expect_failure("COMPONENTS runtime without Abseil and liburing" "absl|liburing"
  ${hidden_env} "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/probe"
  -B "${work_dir}/probe-hidden-runtime" ${consumer_args} ${hidden_args}
  "-DPROBE_VERSION=0.2" "-DPROBE_COMPONENTS=runtime")

# (b) everything: the README's project.
set(build_b "${work_dir}/hello")
run_step("(b) configure examples/hello (msgport::msgport)"
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/examples/hello" -B "${build_b}" ${consumer_args})
check_from_prefix("${build_b}")
run_step("(b) build" "${CMAKE_COMMAND}" --build "${build_b}")
capture(out "${build_b}/hello")
if(NOT out STREQUAL "the answer is 42")
  message(FATAL_ERROR "install_consumer: (b) hello printed '${out}', not 'the answer is 42'")
endif()

# The package config: versions and components.
run_step("find_package(msgport 0.2 COMPONENTS io) brings runtime and ports"
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/probe" -B "${work_dir}/probe-io"
  ${consumer_args} "-DPROBE_VERSION=0.2" "-DPROBE_COMPONENTS=io")
expect_failure("find_package(msgport 9.0)" "9\\.0"
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/probe" -B "${work_dir}/probe-9.0"
  ${consumer_args} "-DPROBE_VERSION=9.0")
expect_failure("find_package(msgport COMPONENTS nosuch)" "msgport has no component 'nosuch'"
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/probe" -B "${work_dir}/probe-nosuch"
  ${consumer_args} "-DPROBE_COMPONENTS=ports,nosuch")

# (c) pkg-config and a plain compiler line.
set(pc_env ${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${pc_dir}")
capture(version ${pc_env} "${PKG_CONFIG_EXECUTABLE}" --modversion msgport)
capture(cflags ${pc_env} "${PKG_CONFIG_EXECUTABLE}" --cflags msgport)
message(STATUS "install_consumer: pkg-config msgport ${version}: ${cflags}")
if(DEFINED VERSION AND NOT version STREQUAL VERSION)
  message(FATAL_ERROR "install_consumer: pkg-config says msgport ${version}, not ${VERSION}")
endif()
run_step("(c) ${CXX} hello/main.cc $(pkg-config --cflags --libs msgport)"
  ${pc_env} sh -c "\"$0\" ${san_flags} -o \"$1\" \"$2\" $(pkg-config --cflags --libs msgport)"
  "${CXX}" "${work_dir}/hello-pc" "${SOURCE_DIR}/examples/hello/main.cc")
capture(out "${work_dir}/hello-pc")
if(NOT out STREQUAL "the answer is 42")
  message(FATAL_ERROR "install_consumer: (c) hello-pc printed '${out}', not 'the answer is 42'")
endif()
run_step("(c) ${CXX} ports/main.cc $(pkg-config --cflags --libs msgport-ports), no other .pc"
  ${CMAKE_COMMAND} -E env --unset=PKG_CONFIG_PATH "PKG_CONFIG_LIBDIR=${pc_dir}"
  sh -c "\"$0\" ${san_flags} -o \"$1\" \"$2\" $(pkg-config --cflags --libs msgport-ports)"
  "${CXX}" "${work_dir}/ports-pc" "${SOURCE_DIR}/tests/consumer/ports/main.cc")
run_step("(c) run ports-pc" "${work_dir}/ports-pc")

message(STATUS "install_consumer: OK (prefix ${prefix})")
