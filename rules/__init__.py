"""The warnings service: flood, rain, traffic-jam and smart-home alerts from live readings.

The rule file's schema is the contract's (``smartcity.rulefile``: the api and the Grafana
boards read the same thresholds); ``engine`` turns readings into alert events (pure, event
time), ``service`` is the MQTT edge; the ``alerts`` measurement is storage's
(``storage.alerts``).
"""

from rules.engine import Engine
from rules.settings import RulesSettings
from smartcity.rulefile import RuleFileError, RuleSet, load_rules, parse_rules

__all__ = ["Engine", "RuleFileError", "RuleSet", "RulesSettings", "load_rules", "parse_rules"]
