"""Each value type's normal form (format page, section 3)."""

import pytest

from confmerge import types
from confmerge.types import Days, Rate, TimeRange


@pytest.mark.parametrize(("parse", "a", "b"), [
    (types.parse_rate, "100M", "100000k"),
    (types.parse_rate, "1G", "1000M"),
    (types.parse_address, "2001:0db8:0000::0001", "2001:db8::1"),
    (types.parse_address, "2001:DB8::1", "2001:db8::1"),
    (types.parse_prefix, "10.20.1.7/16", "10.20.0.0/16"),
    (types.parse_prefix, "2001:db8:0::/48", "2001:db8::/48"),
    (types.parse_days, "sat,sun", "sun,sat"),
    (types.parse_days, "mon-sun", "all"),
    (types.parse_days, "mon-fri", "mon,tue,wed,thu,fri"),
    (types.parse_days, "fri-mon", "fri,sat,sun,mon"),
    (types.parse_bool, "yes", "enabled"),
    (types.parse_bool, "on", "true"),
    (types.parse_bool, "no", "disable"),
    (types.parse_bool, "off", "false"),
    (types.parse_host, "Fast.COM", "fast.com"),
    (types.parse_host, "fast.com.", "fast.com"),
    (types.parse_interface_address, "192.168.0.121/24", "192.168.0.121/24"),
])
def test_equal_in_normal_form(parse, a, b):
    assert parse(a) == parse(b)


@pytest.mark.parametrize(("parse", "a", "b"), [
    (types.parse_rate, "100M", "10M"),
    (types.parse_days, "sat", "sun"),
    (types.parse_timerange, "18:00-23:00", "18:00-23:30"),
    (types.parse_interface_address, "192.168.0.121/24", "192.168.0.122/24"),
])
def test_different_in_normal_form(parse, a, b):
    assert parse(a) != parse(b)


def test_normal_forms_read_as_written():
    assert types.parse_rate("100000k") == Rate(100_000) and str(Rate(100_000)) == "100M"
    assert str(types.parse_rate("0")) == "0"
    assert str(types.parse_rate("1500k")) == "1500k"
    assert str(types.parse_days("sun,sat")) == "sat,sun"
    assert str(types.parse_days("mon-sun")) == "all"
    assert types.parse_timerange("22:00-02:00") == TimeRange(22 * 60, 2 * 60)
    assert str(types.parse_timerange("12:00-24:00")) == "12:00-24:00"
    assert types.parse_days("all") == Days(0x7F)
    assert types.show(True) == "yes" and types.show(False) == "no"
    assert types.to_json(Rate(5000)) == 5000 and types.to_json(Days(3)) == "mon,tue"


@pytest.mark.parametrize(("parse", "word", "message"), [
    (types.parse_id, "256", "0..255"),
    (types.parse_id, "-1", "expected a BQN id"),
    (types.parse_port, "0", "1..65535"),
    (types.parse_port, "65536", "1..65535"),
    (types.parse_mtu, "67", "68..9216"),
    (types.parse_mtu, "9217", "68..9216"),
    (types.parse_int, "1.5", "non-negative integer"),
    (types.parse_bool, "maybe", "yes or no"),
    (types.parse_address, "10.0.0.300", "IPv4 or IPv6"),
    (types.parse_prefix, "10.0.0.0", "ADDRESS/LENGTH"),
    (types.parse_prefix, "10.0.0.0/33", "ADDRESS/LENGTH"),
    (types.parse_rate, "10X", "rate"),
    (types.parse_rate, "100", "rate"),
    (types.parse_days, "mon-fry", "days"),
    (types.parse_timerange, "25:00-26:00", "time range"),
    (types.parse_timerange, "18:00", "time range"),
    (types.parse_timerange, "18:60-19:00", "time range"),
    (types.parse_name, "-leading-dash", "name"),
    (types.parse_name, "x" * 65, "name"),
    (types.parse_host, "bad host!", "host"),
])
def test_wrong_values_are_refused_with_a_reason(parse, word, message):
    with pytest.raises(ValueError, match=message):
        parse(word)


def test_enum():
    speed = types.enum("auto", "10G")
    assert speed("10G") == "10G"
    with pytest.raises(ValueError, match="auto|10G"):
        speed("7G")


@pytest.mark.parametrize(("parse", "largest", "message"), [
    (types.parse_int, "4294967295", "at most 4294967295"),
    (types.parse_rate, "1000G", "at most 1000G"),
    (types.parse_rate, "1000000M", "at most 1000G"),
    (types.parse_rate, "1000000000k", "at most 1000G"),
    (types.parse_id, "255", "0..255"),
    (types.parse_port, "65535", "1..65535"),
])
def test_numbers_are_bounded_by_the_format_with_the_largest_value_named(parse, largest, message):
    parse(largest)
    digits, unit = (largest[:-1], largest[-1]) if largest[-1] in "kMG" else (largest, "")
    for word in (str(int(digits) + 1) + unit, "9" * 5000 + unit, "0" * 5000 + "1" + "0" * 5000 + unit):
        with pytest.raises(ValueError, match=message):
            parse(word)


def test_leading_zeros_do_not_count_against_the_bound():
    assert types.parse_int("0" * 5000 + "7") == 7
    assert types.parse_rate("0" * 5000 + "7M") == Rate(7000)


@pytest.mark.parametrize(("parse", "word"), [
    (types.parse_int, "\u0661\u0662"),
    (types.parse_rate, "\u0661\u0662M"),
    (types.parse_timerange, "\u0661\u0668:00-23:00"),
    (types.parse_prefix, "10.0.0.0/\u0661\u0666"),
])
def test_digits_are_ascii_digits(parse, word):
    with pytest.raises(ValueError):
        parse(word)
