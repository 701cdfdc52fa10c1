"""Build of the one C extension (the exact deflate-length kernel behind ZIP-FIT); metadata is in
pyproject.toml. Plain C and the machine's compiler, no other toolchain; if it is missing the
package still works (ZIP-FIT falls back to zlib with a warning)."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lmsieve.features._deflate_len",
            ["lmsieve/features/_deflate_len.c"],
            extra_compile_args=["-O3", "-std=c11", "-D_GNU_SOURCE"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
