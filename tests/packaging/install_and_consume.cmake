# SPDX-License-Identifier: MIT
# cmake -P script behind the CTest case lst_install_and_consume (see tests/CMakeLists.txt):
#   1. brings the build tree up to date with its sources (re-checks the header globs),
#   2. installs it (component lst_Development) into a fresh prefix,
#   3. configures tests/packaging/consumer against that prefix only, builds it and runs it.
# Any failing step fails the test, with that step's output printed.
#
# Inputs (-D): LST_BUILD_DIR, LST_PREFIX, LST_CONSUMER_SOURCE_DIR, LST_CONSUMER_BINARY_DIR; optional:
# LST_REFRESH_TARGET, LST_INCLUDEDIR and LST_CMAKEDIR (relative to the prefix), LST_CONFIG, LST_GENERATOR,
# LST_GENERATOR_PLATFORM, LST_GENERATOR_TOOLSET, LST_MAKE_PROGRAM, LST_CXX_COMPILER.
cmake_minimum_required(VERSION 3.23)

foreach(var LST_BUILD_DIR LST_PREFIX LST_CONSUMER_SOURCE_DIR LST_CONSUMER_BINARY_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_and_consume.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${LST_BUILD_DIR}/CMakeCache.txt")
  message(FATAL_ERROR "install_and_consume.cmake: ${LST_BUILD_DIR} is not a configured build tree")
endif()
if("${LST_CONFIG}" STREQUAL "")
  set(LST_CONFIG Release)
endif()
if("${LST_INCLUDEDIR}" STREQUAL "")
  set(LST_INCLUDEDIR include)
endif()
if("${LST_CMAKEDIR}" STREQUAL "")
  set(LST_CMAKEDIR share/cmake/lst)
endif()

# run_step(<description> <command...>): runs the command, echoes it, and fails with its output if it fails.
function(run_step description)
  string(REPLACE ";" " " pretty "${ARGN}")
  message(STATUS "[install_and_consume] ${description}: ${pretty}")
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE result
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output)
  if(NOT result STREQUAL "0")
    message("${output}")
    message(FATAL_ERROR "[install_and_consume] FAILED (${result}): ${description}")
  endif()
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

# 1. Make sure the build system matches the sources (a header added since the last configure gets installed).
if(NOT "${LST_REFRESH_TARGET}" STREQUAL "")
  run_step("refresh the build tree" "${CMAKE_COMMAND}" --build "${LST_BUILD_DIR}" --config "${LST_CONFIG}"
           --target "${LST_REFRESH_TARGET}")
endif()

# 2. Install into a fresh prefix: nothing stale from an earlier run can satisfy the consumer.
file(REMOVE_RECURSE "${LST_PREFIX}" "${LST_CONSUMER_BINARY_DIR}")
run_step("install" "${CMAKE_COMMAND}" --install "${LST_BUILD_DIR}" --prefix "${LST_PREFIX}"
         --config "${LST_CONFIG}" --component lst_Development)
foreach(expected
    "${LST_PREFIX}/${LST_INCLUDEDIR}/lst/lst.hpp"
    "${LST_PREFIX}/${LST_CMAKEDIR}/lstConfig.cmake"
    "${LST_PREFIX}/${LST_CMAKEDIR}/lstConfigVersion.cmake"
    "${LST_PREFIX}/${LST_CMAKEDIR}/lstTargets.cmake")
  if(NOT EXISTS "${expected}")
    message("${step_output}")
    message(FATAL_ERROR "[install_and_consume] FAILED: the install did not produce ${expected}")
  endif()
endforeach()

# 3. Configure, build and run the consumer against the installed prefix.
set(configure_args
  -S "${LST_CONSUMER_SOURCE_DIR}"
  -B "${LST_CONSUMER_BINARY_DIR}"
  "-DCMAKE_PREFIX_PATH=${LST_PREFIX}"
  "-DCMAKE_BUILD_TYPE=${LST_CONFIG}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(NOT "${LST_GENERATOR}" STREQUAL "")
  list(APPEND configure_args -G "${LST_GENERATOR}")
endif()
if(NOT "${LST_GENERATOR_PLATFORM}" STREQUAL "")
  list(APPEND configure_args -A "${LST_GENERATOR_PLATFORM}")
endif()
if(NOT "${LST_GENERATOR_TOOLSET}" STREQUAL "")
  list(APPEND configure_args -T "${LST_GENERATOR_TOOLSET}")
endif()
if(NOT "${LST_MAKE_PROGRAM}" STREQUAL "")
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${LST_MAKE_PROGRAM}")
endif()
if(NOT "${LST_CXX_COMPILER}" STREQUAL "")
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${LST_CXX_COMPILER}")
endif()
run_step("configure the consumer" "${CMAKE_COMMAND}" ${configure_args})

# The consumer must have found lst in the fresh prefix, not some other installed copy.
file(STRINGS "${LST_CONSUMER_BINARY_DIR}/CMakeCache.txt" lst_dir_line REGEX "^lst_DIR:")
string(REGEX REPLACE "^lst_DIR:[A-Z]+=" "" lst_dir "${lst_dir_line}")
file(REAL_PATH "${LST_PREFIX}" real_prefix)
if(EXISTS "${lst_dir}")
  file(REAL_PATH "${lst_dir}" lst_dir)
endif()
string(FIND "${lst_dir}" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message("${step_output}")
  message(FATAL_ERROR "[install_and_consume] FAILED: the consumer found lst in '${lst_dir}', "
                      "not in the installed prefix ${real_prefix}")
endif()

run_step("build the consumer" "${CMAKE_COMMAND}" --build "${LST_CONSUMER_BINARY_DIR}" --config "${LST_CONFIG}")

set(consumer "")
foreach(candidate
    "${LST_CONSUMER_BINARY_DIR}/consumer"
    "${LST_CONSUMER_BINARY_DIR}/consumer.exe"
    "${LST_CONSUMER_BINARY_DIR}/${LST_CONFIG}/consumer"
    "${LST_CONSUMER_BINARY_DIR}/${LST_CONFIG}/consumer.exe")
  if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
    set(consumer "${candidate}")
    break()
  endif()
endforeach()
if(consumer STREQUAL "")
  message(FATAL_ERROR "[install_and_consume] FAILED: no consumer executable under ${LST_CONSUMER_BINARY_DIR}")
endif()
run_step("run the consumer" "${consumer}")
message("${step_output}")
message(STATUS "[install_and_consume] OK: lst installed to ${LST_PREFIX} and consumed via find_package(lst)")
