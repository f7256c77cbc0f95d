# SPDX-License-Identifier: MIT
"""Conan 2 recipe for lst (Ladder Side-Tuning), a header-only C++17 library.

    conan create . --build=missing                        # Eigen / nlohmann_json from the system (default)
    conan create . --build=missing -o "lst/*:system_deps=False"   # ... from ConanCenter instead

Dependencies and the `system_deps` option
-----------------------------------------
lst needs Eigen >= 3.4 and nlohmann_json >= 3.10, both header-only. Our machines and CI reach PyPI and Debian's
apt only, not ConanCenter, so by default (system_deps=True) the recipe requires nothing from a Conan remote and
takes both libraries from the system (Debian: libeigen3-dev, nlohmann-json3-dev; see scripts/install-deps.sh).
The package then ships a small CMake build module (cmake/lst-conan-system-deps.cmake) that the CMakeDeps-generated
lst-config.cmake includes: it runs find_package(Eigen3 3.4 NO_MODULE) and find_package(nlohmann_json 3.10) on the
system and adds both to lst::lst, so a consumer needs only find_package(lst) and lst::lst, as with the
CMake-installed package. Other generators than CMakeDeps get no include paths for Eigen / nlohmann_json in this
mode: the consumer must provide them.

With system_deps=False the recipe requires eigen/3.4.0 and nlohmann_json/3.11.2 from a Conan remote (ConanCenter)
and the build module is not used. The option does not change the package contents, so it is not part of the
package id.
"""
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load

required_conan_version = ">=2.0"


class LstConan(ConanFile):
    name = "lst"
    description = "Ladder Side-Tuning: a header-only C++17 library for parameter-efficient fine-tuning"
    license = "MIT"
    topics = ("deep-learning", "transformer", "fine-tuning", "header-only", "eigen")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"system_deps": [True, False]}
    default_options = {"system_deps": True}
    exports_sources = "include/*", "CMakeLists.txt", "cmake/*", "LICENSE"
    no_copy_source = True

    _system_deps_module = os.path.join("cmake", "lst-conan-system-deps.cmake")

    def set_version(self):
        if self.version:
            return
        cmakelists = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        match = re.search(r"project\(\s*lst\s+VERSION\s+([0-9]+(?:\.[0-9]+)*)", cmakelists)
        if not match:
            raise RuntimeError("conanfile.py: no 'project(lst VERSION x.y.z ...)' line in CMakeLists.txt")
        self.version = match.group(1)

    def requirements(self):
        if not self.options.system_deps:
            self.requires("eigen/3.4.0")
            self.requires("nlohmann_json/3.11.2")

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 17)

    def package_id(self):
        self.info.clear()

    def package(self):
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        copy(self, "*", src=os.path.join(self.source_folder, "include"),
             dst=os.path.join(self.package_folder, "include"))
        copy(self, os.path.basename(self._system_deps_module), src=os.path.join(self.source_folder, "cmake"),
             dst=os.path.join(self.package_folder, os.path.dirname(self._system_deps_module)))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "lst")
        self.cpp_info.set_property("cmake_target_name", "lst::lst")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        if self.options.system_deps:
            # Eigen and nlohmann_json come from the system: the build module finds them and links them to lst::lst.
            self.cpp_info.set_property("cmake_build_modules", [self._system_deps_module])
