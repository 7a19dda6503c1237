# Build helpers shared by every folder.

# jailover_set_warnings(TARGET): the project's warning flags on one target.
function(jailover_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(JAILOVER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# jailover_add_library(NAME SRCS ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
# A static library with the project's include root and warnings, aliased as
# jailover::NAME without its "jailover_" prefix.
function(jailover_add_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_LIBS} PRIVATE ${ARG_PRIVATE_LIBS})
  jailover_set_warnings(${name})
  string(REGEX REPLACE "^jailover_" "" short ${name})
  add_library(jailover::${short} ALIAS ${name})
endfunction()

# jailover_add_test(NAME name SRCS ... [LIBS ...] LABELS unit|integration|lab|e2e
#                   [TIMEOUT seconds])
# One gtest binary; each test case becomes a ctest test carrying LABELS.
function(jailover_add_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;LIBS;LABELS" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_SRCS OR NOT ARG_LABELS)
    message(FATAL_ERROR "jailover_add_test needs NAME, SRCS and LABELS")
  endif()
  foreach(label ${ARG_LABELS})
    if(NOT label MATCHES "^(unit|integration|lab|e2e)$")
      message(FATAL_ERROR "jailover_add_test(${ARG_NAME}): unknown label '${label}'")
    endif()
  endforeach()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} jailover_testing GTest::gmock_main)
  jailover_set_warnings(${ARG_NAME})
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()
