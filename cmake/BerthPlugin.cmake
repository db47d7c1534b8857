# berth_plugin(NAME <name> SOURCES <...> [LIBS <...>])
# Builds an in-tree plugin as a MODULE .so into build/lib/berth/plugins/, loaded by berthd
# through the same path a third-party plugin takes.
function(berth_plugin)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_library(${P_NAME} MODULE ${P_SOURCES})
  target_link_libraries(${P_NAME} PRIVATE berth-core Berth::sdk ${P_LIBS})
  set_target_properties(${P_NAME} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${P_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${BERTH_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    BUILD_RPATH "${CMAKE_BINARY_DIR}/lib"
    INSTALL_RPATH "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}")
  install(TARGETS ${P_NAME} LIBRARY DESTINATION ${BERTH_INSTALL_PLUGIN_DIR})
endfunction()

# berth_library(NAME <name> SOURCES <...> [LIBS <...>])
# The logic of a plugin (or other daemon-side component) as a static library, so tests and other
# modules can use it without loading the .so. Symbols stay hidden inside the modules that link it.
function(berth_library)
  cmake_parse_arguments(L "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_library(${L_NAME} STATIC ${L_SOURCES})
  target_include_directories(${L_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${L_NAME} PUBLIC ${L_LIBS})
  set_target_properties(${L_NAME} PROPERTIES CXX_VISIBILITY_PRESET hidden)
endfunction()
