import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_requirements(name):
    with open(os.path.join(HERE, name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith(("#", "-r"))]


with open(os.path.join(HERE, "keras_ssl", "__init__.py")) as f:
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

with open(os.path.join(HERE, "README.md")) as f:
    long_description = f.read()

setup(
    name="keras-ssl",
    version=version,
    description="Self-supervised learning for Keras 3: methods, a model zoo, fine-tuning and export",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The zoo's cards (and the archives of shipped presets) install as keras_ssl/zoo/.
    packages=find_packages(include=["keras_ssl", "keras_ssl.*"]) + ["keras_ssl.zoo"],
    package_dir={"keras_ssl.zoo": "zoo"},
    package_data={"keras_ssl.zoo": ["README.md", "*/preset.json", "*/README.md", "*/*.tar.gz"]},
    install_requires=read_requirements("requirements.txt"),
    extras_require={
        "jax": ["jax[cpu]>=0.6"],
        # backbones.from_keras_hub; 0.32 (keras >= 3.15, tensorflow 2.21) is the version tested
        "hub": ["keras-hub>=0.32"],
        "test": read_requirements("requirements-test.txt"),
    },
    entry_points={"console_scripts": ["keras-ssl=keras_ssl.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
