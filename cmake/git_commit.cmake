# Writes OUTPUT, the definition of gfsim::git_commit(): the commit the binary is built from, with
# "-dirty" when tracked files differ from it ("unknown" outside a git checkout). Run at every build
# (the gfsim_git_commit target): rewritten only when the text changes, so an unchanged commit
# recompiles nothing. Invoked as cmake -DSOURCE_DIR=... -DOUTPUT=... -P cmake/git_commit.cmake.
execute_process(COMMAND git rev-parse --short=12 HEAD
  WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE commit
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no
  WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE dirty
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit "unknown")
elseif(dirty)
  set(commit "${commit}-dirty")
endif()
set(text "// Generated at build time by cmake/git_commit.cmake; do not edit.\n#include \"gfsim/version.hpp\"\n\nnamespace gfsim {\nconst char* git_commit() { return \"${commit}\"; }\n}  // namespace gfsim\n")
set(old "")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUTPUT} "${text}")
endif()
