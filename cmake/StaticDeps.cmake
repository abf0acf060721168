# ETCDSAFE_STATIC_DEPS: link gRPC, protobuf, abseil, upb, c-ares, re2 and yaml-cpp from the
# static archives Debian ships in the same -dev packages, instead of their shared libraries.
# Why: loading ~60 shared libraries costs every process its symbol lookups and relocations
# (their hash tables, symbol names and relocated pages become resident). With the archives
# `etcdsafe version` peaks at 12 MiB instead of 16 MiB and the idle agent stays under its
# 20 MiB budget (issue 8). OpenSSL, zlib, zstd, cpp-httplib and libstdc++ stay shared
# (security updates of the system's TLS library apply without a rebuild).
#
# Include after find_package(gRPC) and find_package(absl); re2 and c-ares must be defined
# before find_package(gRPC), whose find modules keep a target that already exists.

set(_etcdsafe_libdir "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}")

# Before find_package(gRPC): the two dependencies gRPC finds with its own modules. Findre2
# keeps an existing re2::re2; Findc-ares takes the library from the c-ares_LIBRARY cache entry.
macro(etcdsafe_static_predefine)
  if(NOT TARGET re2::re2 AND EXISTS "${_etcdsafe_libdir}/libre2.a")
    add_library(re2::re2 STATIC IMPORTED)
    set_target_properties(re2::re2 PROPERTIES IMPORTED_LOCATION "${_etcdsafe_libdir}/libre2.a")
  endif()
  if(EXISTS "${_etcdsafe_libdir}/libcares.a")
    set(c-ares_LIBRARY "${_etcdsafe_libdir}/libcares.a" CACHE FILEPATH "c-ares, static (ETCDSAFE_STATIC_DEPS)" FORCE)
  endif()
endmacro()

# After: every imported gRPC::, absl::, protobuf:: and yaml-cpp target of this directory
# points at its .a (when Debian has one).
function(etcdsafe_static_switch)
  get_directory_property(_imported IMPORTED_TARGETS)
  foreach(_t IN LISTS _imported)
    if(NOT _t MATCHES "^(gRPC::(grpc\\+\\+|grpc|gpr|upb|address_sorting)|absl::.*|protobuf::libprotobuf|yaml-cpp)$")
      continue()
    endif()
    get_target_property(_type ${_t} TYPE)
    if(_type STREQUAL "INTERFACE_LIBRARY")
      continue()
    endif()
    set(_loc "")
    foreach(_prop IMPORTED_LOCATION_NONE IMPORTED_LOCATION_RELEASE IMPORTED_LOCATION_RELWITHDEBINFO IMPORTED_LOCATION)
      get_target_property(_l ${_t} ${_prop})
      if(_l AND NOT _loc)
        set(_loc "${_l}")
      endif()
    endforeach()
    if(NOT _loc OR _loc MATCHES "\\.a$")
      continue()
    endif()
    string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" _archive "${_loc}")
    if(_archive STREQUAL _loc OR NOT EXISTS "${_archive}")
      message(FATAL_ERROR "ETCDSAFE_STATIC_DEPS: no static archive for ${_t} (${_loc}); configure with -DETCDSAFE_STATIC_DEPS=OFF")
    endif()
    foreach(_cfg NONE RELEASE RELWITHDEBINFO DEBUG MINSIZEREL)
      set_property(TARGET ${_t} PROPERTY IMPORTED_LOCATION_${_cfg} "${_archive}")
      set_property(TARGET ${_t} PROPERTY IMPORTED_SONAME_${_cfg})
    endforeach()
    set_property(TARGET ${_t} PROPERTY IMPORTED_LOCATION "${_archive}")
    set_property(TARGET ${_t} PROPERTY IMPORTED_SONAME)
  endforeach()
endfunction()
