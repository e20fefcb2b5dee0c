# Run by CTest (tests/CMakeLists.txt): compiles SOURCE with the project's compiler, include
# directories and flags (read from FLAGS, written at configure time) and GROVE_CASE_<CASE>
# defined. With a CASE it passes only if the compiler fails AND says EXPECT: a case that fails
# for another reason (a wrong include path, a typo) must not pass. With no CASE it is the
# control and passes only if the source compiles.
cmake_minimum_required(VERSION 3.25)
include(${FLAGS})
if(NOT std_flag)
  set(std_flag -std=c++20)
endif()
set(args ${std_flag} ${options} -fsyntax-only)
# As in CMake's own compile lines: no -I for the compiler's own directories (it would reorder
# them and break #include_next), each directory once.
list(REMOVE_DUPLICATES includes)
foreach(dir IN LISTS includes)
  if(NOT dir IN_LIST implicit_includes)
    list(APPEND args -I${dir})
  endif()
endforeach()
list(REMOVE_DUPLICATES definitions)
foreach(def IN LISTS definitions)
  list(APPEND args -D${def})
endforeach()
if(CASE)
  list(APPEND args -DGROVE_CASE_${CASE})
endif()
execute_process(COMMAND ${compiler} ${args} ${SOURCE} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(said "${out}${err}")

if(NOT CASE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the control source does not compile (exit ${rc}):\n${said}")
  endif()
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE} compiled; it must not")
endif()
string(FIND "${said}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "case ${CASE} failed to compile, but without \"${EXPECT}\":\n${said}")
endif()
