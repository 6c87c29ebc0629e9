"""``kafka.version`` presets, and the producer defaults that follow them.

Written from Kafka's ``ProducerConfig.postProcessAndValidateIdempotenceConfigs``
(KIP-679, KAFKA-13598, KAFKA-13673): how the Java client resolves ``acks`` and
``enable.idempotence`` when they are, and are not, set.
"""

import pytest

from model import versions
from model.config import Config, ConfigError, describe_settings


def resolved(**settings: str) -> tuple[str, bool]:
    config = Config.from_settings({k.replace("_", "."): v for k, v in settings.items()})
    return config.producer.acks, config.producer.enable_idempotence


def test_the_newest_release_is_the_default_and_every_preset_is_accepted():
    assert Config().kafka.version == versions.NEWEST
    assert list(versions.PRESETS)[-1] == versions.NEWEST
    for name in ("2.4", "3.0.0", "3.3", "3.5", "3.6", "3.9", "4.0", "4.4"):
        assert Config.from_settings({"kafka.version": name}).kafka.version == name


def test_an_unknown_release_is_refused_with_the_presets():
    with pytest.raises(ConfigError) as info:
        Config.from_settings({"kafka.version": "3.0"})
    assert str(info.value).startswith("kafka.version: must be one of 2.4, 3.0.0, 3.3, 3.5")


def test_kip_679_defaults_since_3_0():
    """KIP-679 (3.0.0): acks=all and enable.idempotence=true by default; before, acks=1
    and no idempotence."""
    assert resolved() == ("all", True)
    assert resolved(**{"kafka.version": "4.0"}) == ("all", True)
    assert resolved(**{"kafka.version": "2.4"}) == ("1", False)


def test_kafka_13598_3_0_0_ignores_the_idempotence_default():
    """KAFKA-13598: 3.0.0 applied acks=all but left idempotence off unless set."""
    assert resolved(**{"kafka.version": "3.0.0"}) == ("all", False)
    assert Config.from_settings({"kafka.version": "3.0.0", "enable.idempotence": "true"}) \
        .producer.enable_idempotence is True


@pytest.mark.parametrize("conflict", [{"acks": "1"}, {"acks": "0"}, {"retries": "0"},
                                      {"max.in.flight.requests.per.connection": "6"}])
def test_kafka_13673_a_conflicting_setting_silently_disables_the_default(conflict):
    """Idempotence not set explicitly: acks!=all, retries=0 or more than five requests in
    flight turn it off without an error."""
    assert Config.from_settings(conflict).producer.enable_idempotence is False


@pytest.mark.parametrize("conflict, text", [
    ({"acks": "1"}, "Must set acks to all in order to use the idempotent producer. "
                    "Otherwise we cannot guarantee idempotence."),
    ({"retries": "0"}, "Must set retries to non-zero when using the idempotent producer."),
    ({"max.in.flight.requests.per.connection": "6"},
     "Must set max.in.flight.requests.per.connection to at most 5 to use the idempotent "
     "producer."),
    ({"retries": "0", "acks": "1"},
     "Must set retries to non-zero when using the idempotent producer."),
])
def test_explicit_idempotence_with_a_conflict_is_kafkas_config_error(conflict, text):
    with pytest.raises(ConfigError) as info:
        Config.from_settings({**conflict, "enable.idempotence": "true"})
    assert str(info.value) == text


def test_explicit_settings_win_over_release_defaults():
    assert resolved(**{"kafka.version": "2.4", "acks": "all"}) == ("all", False)
    assert resolved(**{"kafka.version": "3.0.0", "acks": "1"}) == ("1", False)
    assert resolved(**{"enable.idempotence": "false"}) == ("all", False)


def test_an_explicitly_idempotent_producer_gets_acks_all_in_every_release():
    """``maybeOverrideAcksAndRetries`` (before 3.0): acks not set is forced to all."""
    assert resolved(**{"kafka.version": "3.0.0", "enable.idempotence": "true"}) \
        == ("all", True)


def test_the_pre_kip_360_idempotent_producer_is_refused_not_misrepresented():
    """Kafka 2.4's idempotent producer reset its producer id on a sequence error instead
    of bumping its epoch (KIP-360 came in 2.5.0); that client is not modelled."""
    with pytest.raises(ConfigError, match="before 2.5 .*not modelled"):
        Config.from_settings({"kafka.version": "2.4", "enable.idempotence": "true"})


def test_saved_settings_resolve_to_the_same_configuration():
    """A history saves every resolved setting; loading them must give the same config."""
    for settings in ({"kafka.version": "2.4"}, {"kafka.version": "3.0.0"}, {"acks": "1"},
                     {}, {"retries": "0"}):
        config = Config.from_settings(settings)
        assert Config.from_settings(config.to_settings()) == config


def test_settings_lists_the_version_with_its_presets():
    rows = {name: (default, accepted) for name, default, accepted, _ in describe_settings()}
    assert rows["kafka.version"] == (versions.NEWEST, " | ".join(versions.PRESETS))
    assert rows["enable.idempotence"][0] is True


def test_a_change_backported_to_older_lines_is_present_from_each_lines_fix():
    change = versions.IDEMPOTENCE_DEFAULT_APPLIED
    assert not change.present_in((3, 0, 0)) and change.present_in((3, 0, 1))
    assert not change.present_in((3, 1, 0)) and change.present_in((3, 1, 1))
    assert change.present_in((3, 5, 2)) and not change.present_in((2, 8, 0))


def test_kip_447_stable_offset_fetch_since_2_5():
    """KIP-447 (2.5.0): the consumer asks for stable offsets (OffsetFetch
    requireStable, ConsumerCoordinator.sendOffsetFetchRequest); 2.4's does not."""
    from model.config import Config
    from model.clients.coordinator import ConsumerCoordinator
    from model.context import Context

    def asks_stable(version: str) -> bool:
        config = Config.from_settings({"kafka.version": version,
                                       "isolation.level": "read_committed"})
        return ConsumerCoordinator("c0", Context(config, ["b0", "c0"]), ["b0"],
                                   None, None).require_stable  # type: ignore[arg-type]

    assert not asks_stable("2.4")
    assert asks_stable("3.0.0") and asks_stable("4.4")
