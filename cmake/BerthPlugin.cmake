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
