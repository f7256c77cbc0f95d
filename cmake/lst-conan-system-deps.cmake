# SPDX-License-Identifier: MIT
# Conan build module of lst, used only with the recipe's default option system_deps=True (see conanfile.py).
# The lst-config.cmake that Conan's CMakeDeps generates includes this file after it defines lst::lst. Eigen and
# nlohmann_json are then not Conan packages: find the system's copies and attach them to lst::lst, so that
# find_package(lst) + lst::lst is all a consumer needs, as with lst's own CMake package.
if(NOT TARGET Eigen3::Eigen)
  find_package(Eigen3 3.4 REQUIRED NO_MODULE)
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.10 REQUIRED)
endif()
if(TARGET lst::lst)
  set_property(TARGET lst::lst APPEND PROPERTY INTERFACE_LINK_LIBRARIES Eigen3::Eigen nlohmann_json::nlohmann_json)
endif()
