import pytest

from bridge.plugins import registry
from bridge.plugins.echo import EchoOptions, EchoResponder
from tests.responders import Monologue, ToneOptions


def test_builtin_echo_is_an_entry_point():
    assert "echo" in registry.available()
    assert registry.load("echo") is EchoResponder


def test_module_class_spec():
    assert registry.load("tests.responders:Monologue") is Monologue


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "no responder named 'nope'"),
        ("tests.responders:Missing", "cannot load"),
        ("no_such_module:X", "cannot load"),
        ("tests.responders:ClassVar", "not a subclass"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(registry.ResponderError, match=message):
        registry.load(spec)


def test_options_are_validated():
    assert registry.parse_options(EchoResponder, ["mode=live"]) == EchoOptions(mode="live")
    assert registry.parse_options(Monologue, ["seconds=1.5"]) == ToneOptions(seconds=1.5)
    with pytest.raises(registry.ResponderError, match="mode"):
        registry.parse_options(EchoResponder, ["mode=shout"])
    with pytest.raises(registry.ResponderError, match="no option 'colour'; it takes mode, "):
        registry.parse_options(EchoResponder, ["colour=blue"], "echo")
    with pytest.raises(registry.ResponderError, match="not key=value"):
        registry.parse_options(EchoResponder, ["mode"])
