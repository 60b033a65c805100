"""TrainConfig is the one schema of the hyper-parameters: the launch form, the ``train``
command's options and the API are made from it, offer every field, and accept or refuse the
same values at each field's limits. The limits are read from the schema, not restated here."""

import json
import math
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError
from rest_framework.test import APIClient

from core.errors import ApplicationError
from training.api import TrainConfigSerializer
from training.core.config import ConfigError, ConfigField, TrainConfig, config_fields
from training.forms import TrainingLaunchForm
from training.management.commands.train import Command
from training.models import TrainingRun
from training.services import training_config_defaults

pytestmark = pytest.mark.django_db


def _limit_cases(config_field: ConfigField) -> list[tuple[object, bool]]:
    """(value, accepted) at and just past each of the field's limits, and for its choices."""
    cases = []
    step = (lambda x, d: x + d) if config_field.kind == "int" else None

    def beyond(limit, direction):
        if step:
            return step(int(limit), direction)
        return math.nextafter(float(limit), direction * math.inf)

    for limit, direction, inclusive in (
        (config_field.minimum, -1, True),
        (config_field.maximum, +1, True),
        (config_field.above, -1, False),
        (config_field.below, +1, False),
    ):
        if limit is None:
            continue
        limit = int(limit) if config_field.kind == "int" else float(limit)
        cases.append((limit, inclusive))
        cases.append((beyond(limit, direction), False))
        if not inclusive:
            cases.append((beyond(limit, -direction), True))
    for value in config_field.values:
        cases.append((value, True))
    if config_field.choices:
        cases.append(("no-such-choice", False))
    if config_field.max_length:
        cases.append(("x" * config_field.max_length, True))
        cases.append(("x" * (config_field.max_length + 1), False))
    return cases


CASES = [
    pytest.param(config_field, value, accepted, id=f"{config_field.name}={str(value)[:12]}")
    for config_field in config_fields()
    for value, accepted in _limit_cases(config_field)
]


def _form_accepts(name: str, value) -> bool:
    form = TrainingLaunchForm({name: str(value)}, defaults=training_config_defaults())
    valid = form.is_valid()
    assert valid or list(form.errors) == [name]
    return valid


def _command_line_accepts(name: str, value) -> bool:
    parser = Command().create_parser("manage.py", "train")
    option = "--" + name.replace("_", "-")
    try:
        parsed = parser.parse_args(["--snapshot", "1", option, str(value)])
    except CommandError as error:
        assert option in str(error)
        return False
    assert getattr(parsed, name) == TrainConfig.parse_partial({name: value})[name]
    return True


def _api_accepts(name: str, value) -> bool:
    serializer = TrainConfigSerializer(data={name: value})
    try:
        assert serializer.is_valid(), serializer.errors
    except ApplicationError as error:
        assert error.detail["field"] == name
        return False
    return True


def test_every_hyper_parameter_is_in_the_form_the_command_line_and_the_api():
    names = [f.name for f in config_fields()]
    assert names == list(TrainConfig().to_dict())
    form = TrainingLaunchForm(defaults=training_config_defaults())
    assert [name for name in form.fields if name not in ("name", "more_snapshots")] == names
    parser = Command().create_parser("manage.py", "train")
    options = {action.dest for action in parser._actions}
    assert set(names) <= options
    assert list(TrainConfigSerializer().fields) == names


@pytest.mark.parametrize("config_field, value, accepted", CASES)
def test_form_command_line_and_api_agree_at_the_limits(config_field, value, accepted):
    try:
        config_field.parse(value)
        schema_accepts = True
    except ConfigError:
        schema_accepts = False
    assert schema_accepts == accepted
    name = config_field.name
    assert _form_accepts(name, value) == accepted
    assert _command_line_accepts(name, value) == accepted
    assert _api_accepts(name, value) == accepted


def test_the_form_starts_from_the_defaults_and_empty_fields_take_them():
    defaults = training_config_defaults()
    form = TrainingLaunchForm(defaults=defaults)
    for config_field in config_fields():
        initial = form[config_field.name].initial
        expected = defaults[config_field.name]
        if config_field.kind == "list":
            expected = ", ".join(expected)
        if config_field.name == "base_model":
            # The configured default is named by the placeholder, not shown as its folder.
            expected = ""
        assert initial == expected, config_field.name
    blank = TrainingLaunchForm({"method": "full"}, defaults=defaults)
    assert blank.is_valid(), blank.errors
    # An unticked checkbox is False: every bool field is in a submitted form's config.
    assert blank.config() == {
        "method": "full",
        "quantize_4bit": False,
        "gradient_checkpointing": False,
        "gradient_cache": False,
        "merge_adapter": False,
    }
    assert TrainConfig.from_dict(blank.config()).learning_rate == 2e-5


def test_the_api_refuses_a_bad_value_with_its_field_and_launches_a_good_config(
    curator, snapshot, sent
):
    api = APIClient()
    api.force_authenticate(curator)
    url = "/api/training-runs/"
    bad = api.post(url, {"snapshot": snapshot.pk, "config": {"lora_r": 0}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["field"] == "lora_r" and "lora r" in bad.json()["message"]
    unknown = api.post(url, {"snapshot": snapshot.pk, "config": {"lora_rank": 4}}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "lora_rank"
    good = api.post(
        url, {"snapshot": snapshot.pk, "config": {"lora_r": 4, "bf16": "off"}}, format="json"
    )
    assert good.status_code == 202, good.json()
    run = TrainingRun.objects.get(pk=good.json()["id"])
    assert run.config["lora_r"] == 4 and run.config["bf16"] == "off"
    # A form-encoded request sends the config as one JSON text.
    form = urlencode({"snapshot": snapshot.pk, "config": json.dumps({"max_steps": 3})})
    encoded = api.post(url, form, content_type="application/x-www-form-urlencoded")
    assert encoded.status_code == 202, encoded.json()
    assert TrainingRun.objects.get(pk=encoded.json()["id"]).config["max_steps"] == 3
