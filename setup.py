import os
import re

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "ppzoo", "__init__.py"), encoding="utf-8") as f:
    version = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)
with open(os.path.join(here, "requirements.txt"), encoding="utf-8") as f:
    requirements = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]

setup(
    name="ppzoo",
    version=version,
    description="A PaddlePaddle model zoo of 2022 research methods, reproducible from YAML configs",
    packages=find_packages(include=["ppzoo", "ppzoo.*"]),
    package_data={"ppzoo": ["hub/*.yml"]},
    install_requires=requirements,
    python_requires=">=3.9",
)
