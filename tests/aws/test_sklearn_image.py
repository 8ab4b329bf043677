"""One scikit-learn framework image for training and serving (``mlops.backends.aws.sklearn_image``)."""

from __future__ import annotations

import re

import pytest
import sklearn

from mlops.backends.aws.hosting import SageMakerHosting
from mlops.backends.aws.registry import SageMakerRegistry
from mlops.backends.aws.sklearn_image import SKLEARN_FRAMEWORK_VERSION, published_regions, sklearn_image_uri
from mlops.backends.aws.training import SageMakerTrainer, SageMakerTuner
from mlops.backends.base import EndpointSpec
from testkit.container import REQUIREMENTS


def test_training_and_serving_images_are_the_same_image_in_every_region_that_has_it():
    regions = published_regions("inference")

    assert len(regions) > 20
    assert published_regions("training") == regions
    for region in regions:
        assert sklearn_image_uri(region, "training") == sklearn_image_uri(region, "inference")
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com/sagemaker-scikit-learn:1\.9-0-cpu-py3",
                        sklearn_image_uri("eu-west-1", "training"))


def test_every_aws_port_defaults_to_that_one_image(settings, s3):
    import boto3

    sagemaker = boto3.client("sagemaker", region_name=settings.aws_region)
    expected = sklearn_image_uri(settings.aws_region, "inference")
    hosting = SageMakerHosting(settings, sagemaker_client=sagemaker, s3_client=s3)
    container = hosting._container(EndpointSpec("e", "e-1", f"s3://{settings.data_uri[5:]}/m.tar.gz", "0" * 64))

    assert SageMakerTuner(settings, sagemaker_client=sagemaker, s3_client=s3).image_uri == expected
    assert SageMakerTrainer(settings, sagemaker_client=sagemaker, s3_client=s3).image_uri == expected
    assert SageMakerRegistry(settings, sagemaker_client=sagemaker, s3_client=s3).image_uri == expected
    assert container["Image"] == expected


def test_the_image_runs_the_scikit_learn_the_project_trains_and_serves_with():
    major_minor = ".".join(sklearn.__version__.split(".")[:2])

    assert SKLEARN_FRAMEWORK_VERSION.split("-")[0] == major_minor
    assert REQUIREMENTS.name.startswith(f"sklearn-{SKLEARN_FRAMEWORK_VERSION}-")  # the contract tests' image


@pytest.mark.parametrize(("region", "scope", "version", "message"), [
    # the old training fallback: SageMaker serves 1.4-2 only in its py312 variant
    ("eu-west-1", "inference", "1.4-2", "no scikit-learn inference image '1.4-2'"),
    ("eu-west-1", "inference", "0.1-0", "no scikit-learn inference image '0.1-0'"),
    ("mars-north-1", "training", SKLEARN_FRAMEWORK_VERSION, "image 1.9-0 is not published in mars-north-1"),
    ("eu-west-1", "processing", SKLEARN_FRAMEWORK_VERSION, "scope 'processing' is not one of training, inference"),
])
def test_an_image_the_sdk_does_not_list_is_an_error_naming_it_never_a_fallback(region, scope, version, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sklearn_image_uri(region, scope, version)
