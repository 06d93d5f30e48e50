"""The warnings service: flood, rain, traffic-jam and smart-home alerts from live readings.

``config`` reads the rule file, ``engine`` turns readings into alert events (pure, event
time), ``service`` is the MQTT edge, ``query`` builds the InfluxQL the api serves alerts with.
"""

from rules.config import RuleFileError, RuleSet, load_rules, parse_rules
from rules.engine import Engine
from rules.settings import RulesSettings

__all__ = ["Engine", "RuleFileError", "RuleSet", "RulesSettings", "load_rules", "parse_rules"]
