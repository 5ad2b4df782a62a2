# Run at build time (cmake -P): writes git_revision.h with `git describe --always --dirty` of SOURCE_DIR, or
# REVISION when given (image builds without .git pass -DSOCKMAPD_GIT_REVISION=...), or "unknown".
# configure_file rewrites the header only when the revision changed, so an unchanged tree rebuilds nothing.
if(REVISION)
  set(SOCKMAPD_GIT_REVISION "${REVISION}")
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" describe --always --dirty --abbrev=12
                  OUTPUT_VARIABLE SOCKMAPD_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE failed ERROR_QUIET)
  if(failed OR SOCKMAPD_GIT_REVISION STREQUAL "")
    set(SOCKMAPD_GIT_REVISION "unknown")
  endif()
endif()
configure_file("${SOURCE_DIR}/cmake/git_revision.h.in" "${OUTPUT}" @ONLY)
