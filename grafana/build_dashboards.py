"""Builds the smartcity Grafana boards, ``grafana/dashboards/*.json``, from the city file and
the warning rules: the thresholds, units and place names on the boards are the city's own.

    python grafana/build_dashboards.py            # write the boards
    python grafana/build_dashboards.py --check    # exit 1 if a stored board differs

Every query is raw InfluxQL against the measurements ingest and rules write (one per domain,
``alerts``, ``ingest_stats``, ``device_rejections``); tests/test_grafana_boards.py runs each
one against an InfluxDB filled by the simulators.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from panels import (
    LEVEL_TEXT,
    STATE_TEXT,
    UNITS,
    Board,
    Json,
    bargauge,
    gauge,
    prop,
    rename,
    rule_steps,
    stat,
    state_timeline,
    steps,
    table,
    target,
    timeseries,
    value_mappings,
)

from smartcity.city import City, load_city
from smartcity.models import TELEMETRY_MODELS
from smartcity.registry import DeviceInfo
from smartcity.rulefile import Rule, RuleSet, load_rules
from smartcity.topics import Domain

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"

CITY = "\"source\" != 'live'"  # the city's own devices; exhibitors' are on their own board
LIVE = "\"source\" = 'live'"
DOMAINS = "/^(" + "|".join(d.value for d in TELEMETRY_MODELS) + ")$/"
DEVICE_MEASUREMENTS = "/^(" + "|".join([*(d.value for d in TELEMETRY_MODELS),
                                         "device_rejections"]) + ")$/"
EXHIBITOR_METRICS = "/^(" + "|".join(sorted({m for model in TELEMETRY_MODELS.values()
                                             for m in model.metric_names()})) + ")$/"
# The Phú An station's alarm levels (báo động 1-3) for the Saigon river, in cm.
RIVER_ALARMS = steps("green", (150, "yellow"), (160, "orange"), (170, "red"))
ACTIVE_ALERTS = ("SELECT count(\"last\") FROM (SELECT last(\"value\"), \"state\" FROM \"alerts\" "
                 "WHERE time > now() - 90d GROUP BY \"alert_id\") WHERE \"state\" != 'cleared'")


def series(measurement: str, metric: str, fn: str = "mean", where: str = CITY) -> str:
    return (f'SELECT {fn}("{metric}") FROM "{measurement}" WHERE $timeFilter AND {where} '
            'GROUP BY time($__interval), "device_id" fill(none)')


def latest(measurement: str, metric: str) -> str:
    return (f'SELECT last("{metric}") FROM "{measurement}" WHERE $timeFilter AND {CITY} '
            'GROUP BY "device_id"')


def across(agg: str, measurement: str, metric: str) -> str:
    """One number over the city's devices: ``agg`` of each device's latest value."""
    return (f'SELECT {agg}("v") FROM (SELECT last("{metric}") AS "v" FROM "{measurement}" '
            f'WHERE $timeFilter AND {CITY} GROUP BY "device_id")')


LEVEL_WORDS = {"advisory": ("lưu ý", "advisory"), "watch": ("theo dõi", "watch"),
               "warning": ("cảnh báo", "warning"), "danger": ("nguy hiểm", "danger")}


def levels_text(rule: Rule) -> str:
    """The rule's levels in words, Vietnamese (decimal comma) first: a panel's description."""
    levels = rule.thresholds(None)
    side = ("từ", "from") if rule.direction == "above" else ("dưới", "below")
    vi = ", ".join(f"{LEVEL_WORDS[t.level][0]} {side[0]} {t.enter:g}".replace(".", ",")
                   for t in levels)
    en = ", ".join(f"{LEVEL_WORDS[t.level][1]} {side[1]} {t.enter:g}" for t in levels)
    return f"{vi[:1].upper()}{vi[1:]} {rule.unit} · {en[:1].upper()}{en[1:]} {rule.unit}"


def alerts_table(where: str = "") -> str:
    return ('SELECT "title_vi", "title_en", "level", "state", "value", "unit" FROM "alerts" '
            f"WHERE $timeFilter{where} ORDER BY time DESC LIMIT 50")


class Boards:
    def __init__(self, city: City, rules: RuleSet) -> None:
        self.registry = city.registry()
        self.rules = {(r.domain, r.metric): r for r in rules.enabled()}

    def rule(self, domain: Domain, metric: str) -> Rule:
        return self.rules[(domain, metric)]

    def names(self, domain: Domain,
              extra: Callable[[DeviceInfo], Iterable[Json]] | None = None) -> list[Json]:
        """Show each device of ``domain`` under its Vietnamese name (series are aliased by
        device_id), with ``extra`` properties per device."""
        return [rename(d.device_id, d.name, *(extra(d) if extra else ()))
                for d in self.registry.by_domain(domain)]

    def flood_sites(self) -> list[Json]:
        """Names, and each flood site's own levels (the city file's warning_cm)."""
        rule = self.rule(Domain.FLOOD, "water_level_cm")
        return self.names(Domain.FLOOD, lambda d: [prop("thresholds", rule_steps(rule, d.site))]
                          if d.site in rule.sites else [])

    def alert_columns(self) -> list[Json]:
        return [rename("title_vi", "Cảnh báo"), rename("title_en", "Alert"),
                rename("level", "Mức · Level", prop("mappings", value_mappings(LEVEL_TEXT)),
                       prop("custom.cellOptions", {"type": "color-background"})),
                rename("state", "Trạng thái · State",
                       prop("mappings", value_mappings(STATE_TEXT)),
                       prop("custom.cellOptions", {"type": "color-text"})),
                rename("value", "Giá trị · Value"), rename("unit", "Đơn vị · Unit"),
                rename("Time", "Thời gian · Time")]

    # -- the boards ------------------------------------------------------------------------

    def overview(self) -> Board:
        b = Board("smartcity-overview", "Tổng quan thành phố · City overview",
                  "Thành phố đang sống: cảnh báo, ngập, sông, mưa, giao thông, không khí · "
                  "The living city at a glance", tags=("overview",))
        flood, rain = self.rule(Domain.FLOOD, "water_level_cm"), self.rule(Domain.WEATHER,
                                                                           "rain_mm_h")
        speed, air = self.rule(Domain.TRAFFIC, "speed_kmh"), self.rule(Domain.HOME, "pm25_ugm3")
        b.add(4, 5, stat("Cảnh báo đang có · Active alerts",
                         "Cảnh báo chưa kết thúc · Alerts not yet cleared",
                         [target(ACTIVE_ALERTS)], thresholds=steps("green", (1, "orange")),
                         no_value="0", decimals=0))
        b.add(4, 5, stat("Ngập sâu nhất · Deepest flooding",
                         "Điểm ngập sâu nhất lúc này · The deepest street flooding now",
                         [target(across("max", "flood", "water_level_cm"))],
                         unit=UNITS["water_level_cm"], decimals=0,
                         thresholds=rule_steps(flood)))
        b.add(4, 5, stat("Sông Sài Gòn · Saigon river", "Mực nước tại Phú An · River at Phu An",
                         [target(across("max", "flood", "river_level_cm"))],
                         unit=UNITS["river_level_cm"], decimals=0, thresholds=RIVER_ALARMS))
        b.add(4, 5, stat("Mưa · Rain", "Cường độ mưa lớn nhất · Heaviest rain now",
                         [target(across("max", "weather", "rain_mm_h"))],
                         unit=UNITS["rain_mm_h"], decimals=0, thresholds=rule_steps(rain)))
        b.add(4, 5, stat("Đường chậm nhất · Slowest road",
                         "Tốc độ trên tuyến chậm nhất · Speed on the slowest road",
                         [target(across("min", "traffic", "speed_kmh"))],
                         unit=UNITS["speed_kmh"], decimals=0, thresholds=rule_steps(speed)))
        b.add(4, 5, stat("Bụi mịn trong nhà · Indoor PM2.5",
                         "Nhà có không khí kém nhất · The home with the worst air",
                         [target(across("max", "home", "pm25_ugm3"))],
                         unit=UNITS["pm25_ugm3"], decimals=0, thresholds=rule_steps(air)))
        b.add(12, 9, timeseries("Mực nước ngập · Flood depth",
                                "Độ sâu nước trên đường tại các điểm ngập · Water on the street "
                                "at each flood point",
                                [target(series("flood", "water_level_cm"),
                                        alias="$tag_device_id")],
                                unit=UNITS["water_level_cm"], thresholds=rule_steps(flood),
                                threshold_lines=True, overrides=self.flood_sites()))
        b.add(12, 9, timeseries("Tốc độ giao thông · Road speed",
                                "Tốc độ trung bình trên từng tuyến · Mean speed on each road",
                                [target(series("traffic", "speed_kmh"),
                                        alias="$tag_device_id")],
                                unit=UNITS["speed_kmh"], thresholds=rule_steps(speed),
                                threshold_lines=True, overrides=self.names(Domain.TRAFFIC)))
        b.add(16, 9, table("Cảnh báo gần đây · Recent alerts",
                           "Mỗi lần cảnh báo được phát, thay đổi hoặc kết thúc · Every alert "
                           "raised, changed or cleared", [target(alerts_table(), fmt="table")],
                           overrides=self.alert_columns()))
        b.add(8, 9, timeseries("Nhiệt độ ngoài trời · Outdoor temperature",
                               "Trạm đo thời tiết · The weather station",
                               [target(series("weather", "temperature_c"),
                                       alias="$tag_device_id")],
                               unit=UNITS["temperature_c"], decimals=1,
                               overrides=self.names(Domain.WEATHER)))
        return b

    def traffic(self) -> Board:
        b = Board("smartcity-traffic", "Giao thông · Traffic",
                  "Tốc độ, lưu lượng và ùn tắc trên các tuyến · Speed, flow and jams on the "
                  "roads", tags=("traffic",))
        speed = self.rule(Domain.TRAFFIC, "speed_kmh")
        names = self.names(Domain.TRAFFIC)
        b.add(8, 10, bargauge("Tốc độ hiện tại · Speed now",
                              "Tốc độ mới nhất trên từng tuyến · Latest speed on each road",
                              [target(latest("traffic", "speed_kmh"), alias="$tag_device_id")],
                              unit=UNITS["speed_kmh"], decimals=0, minimum=0, maximum=60,
                              thresholds=rule_steps(speed), overrides=names))
        b.add(16, 10, timeseries("Tốc độ · Speed",
                                 levels_text(speed),
                                 [target(series("traffic", "speed_kmh"),
                                         alias="$tag_device_id")],
                                 unit=UNITS["speed_kmh"], thresholds=rule_steps(speed),
                                 threshold_lines=True, overrides=names))
        b.add(24, 8, state_timeline("Ùn tắc theo tuyến · Jams by road",
                                    "Đỏ: kẹt xe, cam: ùn tắc · Red: standstill, orange: jam",
                                    [target(series("traffic", "speed_kmh"),
                                            alias="$tag_device_id")],
                                    unit=UNITS["speed_kmh"], decimals=0,
                                    thresholds=rule_steps(speed), overrides=names))
        b.add(12, 8, timeseries("Lưu lượng · Flow",
                                "Số xe mỗi giờ, xe máy tính là một xe · Vehicles an hour, a "
                                "motorbike counts as one",
                                [target(series("traffic", "flow_veh_h"),
                                        alias="$tag_device_id")],
                                unit=UNITS["flow_veh_h"], decimals=0, overrides=names))
        b.add(12, 8, timeseries("Mật độ chiếm dụng · Occupancy",
                                "Thời gian có xe trên cảm biến · Share of time a vehicle is over "
                                "the detector",
                                [target(series("traffic", "occupancy_pct"),
                                        alias="$tag_device_id")],
                                unit=UNITS["occupancy_pct"], minimum=0, maximum=100,
                                overrides=names))
        b.add(24, 8, table("Cảnh báo ùn tắc · Traffic-jam alerts", "",
                           [target(alerts_table(" AND \"domain\" = 'traffic'"), fmt="table")],
                           overrides=self.alert_columns()))
        return b

    def flood(self) -> Board:
        b = Board("smartcity-flood", "Ngập lụt · Flooding",
                  "Ngập đường, triều cường sông Sài Gòn và mưa · Street flooding, the Saigon "
                  "river's tide and the rain", tags=("flood",))
        depth, rain = self.rule(Domain.FLOOD, "water_level_cm"), self.rule(Domain.WEATHER,
                                                                           "rain_mm_h")
        sites = self.flood_sites()
        b.add(8, 9, gauge("Độ sâu hiện tại · Depth now",
                          "Nước trên mặt đường tại từng điểm · Water on the street at each "
                          "point", [target(latest("flood", "water_level_cm"),
                                           alias="$tag_device_id")],
                          unit=UNITS["water_level_cm"], decimals=0, minimum=0, maximum=60,
                          thresholds=rule_steps(depth), overrides=sites))
        b.add(16, 9, timeseries("Mực nước ngập · Flood depth",
                                levels_text(depth) + "; mỗi điểm có thể khác · each site "
                                "may differ",
                                [target(series("flood", "water_level_cm"),
                                        alias="$tag_device_id")],
                                unit=UNITS["water_level_cm"], thresholds=rule_steps(depth),
                                threshold_lines=True, overrides=sites))
        b.add(12, 8, timeseries("Mực nước sông Sài Gòn · Saigon river level",
                                "Trạm Phú An; báo động 1-3: 1,5 / 1,6 / 1,7 m · Phu An station; "
                                "alarm levels 1.5, 1.6 and 1.7 m",
                                [target(series("flood", "river_level_cm"),
                                        alias="$tag_device_id")],
                                unit=UNITS["river_level_cm"], thresholds=RIVER_ALARMS,
                                threshold_lines=True, overrides=self.names(Domain.FLOOD)))
        b.add(12, 8, timeseries("Lượng mưa · Rain intensity",
                                levels_text(rain),
                                [target(series("weather", "rain_mm_h"),
                                        alias="$tag_device_id")],
                                unit=UNITS["rain_mm_h"], thresholds=rule_steps(rain),
                                threshold_lines=True, bars=True,
                                overrides=self.names(Domain.WEATHER)))
        b.add(24, 6, state_timeline("Mức ngập theo điểm · Flood level by site", "",
                                    [target(series("flood", "water_level_cm", "max"),
                                            alias="$tag_device_id")],
                                    unit=UNITS["water_level_cm"], decimals=0,
                                    thresholds=rule_steps(depth), overrides=sites))
        b.add(24, 8, table("Cảnh báo ngập và mưa · Flood and rain alerts", "",
                           [target(alerts_table(" AND \"domain\" =~ /^(flood|weather)$/"),
                                   fmt="table")], overrides=self.alert_columns()))
        return b

    def home(self) -> Board:
        b = Board("smartcity-home", "Nhà thông minh · Smart homes",
                  "Điện, nhiệt độ và không khí trong các ngôi nhà · Power, temperature and air "
                  "in the homes", tags=("home",))
        power, air = self.rule(Domain.HOME, "power_w"), self.rule(Domain.HOME, "pm25_ugm3")
        names = self.names(Domain.HOME)
        b.add(8, 9, bargauge("Công suất hiện tại · Power now",
                             levels_text(power), [target(latest("home", "power_w"),
                                                         alias="$tag_device_id")],
                             unit=UNITS["power_w"], decimals=0, minimum=0, maximum=10_000,
                             thresholds=rule_steps(power), overrides=names))
        b.add(16, 9, timeseries("Công suất điện · Power",
                                "Máy lạnh chạy mạnh nhất vào buổi chiều · Air conditioning "
                                "peaks in the afternoon",
                                [target(series("home", "power_w"), alias="$tag_device_id")],
                                unit=UNITS["power_w"], thresholds=rule_steps(power),
                                threshold_lines=True, overrides=names))
        b.add(12, 8, timeseries("Nhiệt độ trong nhà · Indoor temperature", "",
                                [target(series("home", "temperature_c"),
                                        alias="$tag_device_id")],
                                unit=UNITS["temperature_c"], decimals=1, overrides=names))
        b.add(12, 8, timeseries("Độ ẩm · Humidity", "",
                                [target(series("home", "humidity_pct"),
                                        alias="$tag_device_id")],
                                unit=UNITS["humidity_pct"], decimals=0, overrides=names))
        b.add(12, 8, timeseries("Bụi mịn PM2.5 · PM2.5",
                                levels_text(air),
                                [target(series("home", "pm25_ugm3"), alias="$tag_device_id")],
                                unit=UNITS["pm25_ugm3"], thresholds=rule_steps(air),
                                threshold_lines=True, overrides=names))
        b.add(12, 8, timeseries("CO₂ · CO2", "",
                                [target(series("home", "co2_ppm"), alias="$tag_device_id")],
                                unit=UNITS["co2_ppm"], decimals=0, overrides=names))
        return b

    def exhibitors(self) -> Board:
        b = Board("smartcity-exhibitors", "Thiết bị triển lãm · Exhibitor devices",
                  "Thiết bị của các đơn vị triển lãm: số đo và tin nhắn bị từ chối · "
                  "Exhibitors' own devices: their readings and why a message was refused",
                  time_from="now-1h", tags=("exhibitors",))
        # The refusals too: a device whose every message was refused is the one its exhibitor
        # most needs to find here.
        b.variable("device", "Thiết bị · Device",
                   f'SHOW TAG VALUES FROM {DEVICE_MEASUREMENTS} WITH KEY = "device_id" '
                   f'WHERE {LIVE}')
        mine = f'{LIVE} AND "device_id" =~ /^$device$/'
        refused = '"device_id" =~ /^$device$/'
        b.add(18, 9, timeseries("Số đo · Readings",
                                "Mọi số đo thiết bị đã gửi · Every metric the devices sent",
                                [target(f"SELECT mean({EXHIBITOR_METRICS}) FROM {DOMAINS} "
                                        f"WHERE $timeFilter AND {mine} GROUP BY "
                                        'time($__interval), "device_id" fill(none)',
                                        alias="$tag_device_id $col")]))
        b.add(6, 9, stat("Tin nhắn bị từ chối · Rejected messages",
                         "Trong khoảng thời gian đang xem · In the time range shown",
                         [target('SELECT count("reason_code") FROM "device_rejections" '
                                 f"WHERE $timeFilter AND {refused}")],
                         thresholds=steps("green", (1, "orange")), no_value="0", decimals=0))
        b.add(24, 7, table("Số đo mới nhất · Latest readings",
                           "Giá trị cuối cùng của từng số đo · The last value of each metric",
                           [target(f"SELECT last({EXHIBITOR_METRICS}) FROM {DOMAINS} WHERE "
                                   f'$timeFilter AND {mine} GROUP BY "device_id"',
                                   fmt="table")]))
        b.add(8, 10, timeseries("Từ chối theo lý do · Rejections by reason", "",
                                [target('SELECT count("reason_code") FROM "device_rejections" '
                                        f"WHERE $timeFilter AND {refused} GROUP BY "
                                        'time($__interval), "reason" fill(none)',
                                        alias="$tag_reason")], bars=True, decimals=0))
        b.add(16, 10, table("Vì sao tin nhắn bị từ chối · Why messages were refused",
                            "Mới nhất trước; payload là phần đầu tin nhắn đã gửi · Newest first; "
                            "payload is the start of what was sent",
                            [target('SELECT "device_id", "reason", "problems", "payload", '
                                    '"topic" FROM "device_rejections" WHERE $timeFilter AND '
                                    f"{refused} ORDER BY time DESC LIMIT 100", fmt="table")],
                            overrides=[rename("device_id", "Thiết bị · Device"),
                                       rename("reason", "Lý do · Reason"),
                                       rename("problems", "Chi tiết · Problems"),
                                       rename("payload", "Đã gửi · Payload"),
                                       rename("topic", "Topic"),
                                       rename("Time", "Thời gian · Time")]))
        return b

    def operations(self) -> Board:
        b = Board("smartcity-operations", "Vận hành · Operations",
                  "Ingest và rules: tốc độ, từ chối, độ trễ ghi, spool, cảnh báo · Ingest and "
                  "rules: rate, rejections, write latency, spool, alerts", time_from="now-1h",
                  tags=("operations",))

        def rate(*fields: str) -> str:
            cols = ", ".join(f'non_negative_derivative("{f}", 1s) AS "{f}"' for f in fields)
            return (f'SELECT {cols} FROM "ingest_stats" WHERE $timeFilter GROUP BY '
                    '"client_id"')

        def increase(field: str) -> str:
            return ('SELECT sum("d") FROM (SELECT non_negative_difference("' + field + '") AS '
                    '"d" FROM "ingest_stats" WHERE $timeFilter GROUP BY "client_id")')

        def newest(field: str) -> str:
            return f'SELECT last("{field}") FROM "ingest_stats" WHERE $timeFilter'

        msgs = "suffix:msg/s"
        b.add(4, 5, stat("Lưu · Stored", "Tin nhắn lưu mỗi giây · Readings stored a second",
                         [target(rate("stored"), alias="$tag_client_id")], unit=msgs,
                         decimals=0, graph=True, thresholds=steps("blue")))
        b.add(4, 5, stat("Bị từ chối · Rejected",
                         "Trong khoảng thời gian đang xem · In the time range shown",
                         [target(increase("rejected"))], decimals=0, no_value="0",
                         thresholds=steps("green", (1, "orange"))))
        b.add(4, 5, stat("Hàng đợi · Queue", "Chờ ghi vào InfluxDB · Waiting to be written",
                         [target(newest("queue"))], decimals=0,
                         thresholds=steps("green", (5000, "orange"))))
        b.add(4, 5, stat("Bộ đệm đĩa · Spool",
                         "Lô chờ InfluxDB trở lại · Batches waiting for InfluxDB",
                         [target(newest("spool_bytes"))], unit="bytes",
                         thresholds=steps("green", (1, "orange"))))
        b.add(4, 5, stat("Thư chết · Dead letters",
                         "Dòng InfluxDB từ chối · Lines InfluxDB refused",
                         [target(increase("dead_lettered"))], decimals=0, no_value="0",
                         thresholds=steps("green", (1, "red"))))
        b.add(4, 5, stat("Cảnh báo đang có · Active alerts", "Từ rules · From the rules service",
                         [target(ACTIVE_ALERTS)], decimals=0, no_value="0",
                         thresholds=steps("green", (1, "orange"))))
        b.add(12, 9, timeseries("Tốc độ ingest · Ingest rate",
                                "Nhận, lưu và từ chối mỗi giây · Received, stored and rejected "
                                "a second",
                                [target(rate("received", "stored", "rejected"),
                                        alias="$tag_client_id $col")], unit=msgs))
        b.add(12, 9, timeseries("Độ trễ ghi · Write latency",
                                "Thời gian trung bình ghi một lô vào InfluxDB · Mean time to "
                                "write a batch to InfluxDB",
                                [target('SELECT 1000 * "s" / "n" AS "write_ms" FROM (SELECT '
                                        'non_negative_difference("write_seconds") AS "s", '
                                        'non_negative_difference("batches") AS "n" FROM '
                                        '"ingest_stats" WHERE $timeFilter GROUP BY '
                                        '"client_id") WHERE "n" > 0 GROUP BY "client_id"',
                                        alias="$tag_client_id")], unit="ms", decimals=1,
                                thresholds=steps("green", (250, "orange"), (1000, "red")),
                                threshold_lines=True))
        b.add(12, 9, timeseries("Từ chối theo lý do · Rejections by reason",
                                "Mỗi lần ingest báo cáo · Each ingest report",
                                [target('SELECT non_negative_difference(/^rejected_/) FROM '
                                        '"ingest_stats" WHERE $timeFilter GROUP BY "client_id"',
                                        alias="$col")], bars=True, decimals=0))
        b.add(12, 9, timeseries("Hàng đợi và spool · Queue and spool",
                                "Spool lớn lên khi InfluxDB ngừng · The spool grows while "
                                "InfluxDB is down",
                                [target('SELECT last("queue") AS "queue", last("spool_bytes") '
                                        'AS "spool" FROM "ingest_stats" WHERE $timeFilter '
                                        'GROUP BY time($__interval), "client_id" fill(none)',
                                        alias="$tag_client_id $col")], decimals=0,
                                overrides=[{"matcher": {"id": "byRegexp", "options": ".*spool"},
                                            "properties": [prop("unit", "bytes"),
                                                           prop("custom.axisPlacement",
                                                                "right")]}]))
        b.add(12, 9, timeseries("Sự kiện cảnh báo · Alert events",
                                "Cảnh báo phát, đổi mức, kết thúc theo quy tắc · Alerts "
                                "raised, changed and cleared by rule",
                                [target('SELECT count("value") FROM "alerts" WHERE $timeFilter '
                                        'GROUP BY time($__interval), "rule" fill(none)',
                                        alias="$tag_rule")], bars=True, decimals=0))
        b.add(12, 9, table("Cảnh báo theo quy tắc · Alerts by rule",
                           "Số sự kiện theo quy tắc, mức và trạng thái · Events by rule, level "
                           "and state",
                           [target('SELECT count("value") AS "events" FROM "alerts" WHERE '
                                   '$timeFilter GROUP BY "rule", "level", "state"',
                                   fmt="table")],
                           overrides=[rename("rule", "Quy tắc · Rule"),
                                      rename("level", "Mức · Level",
                                             prop("mappings", value_mappings(LEVEL_TEXT))),
                                      rename("state", "Trạng thái · State",
                                             prop("mappings", value_mappings(STATE_TEXT))),
                                      rename("events", "Sự kiện · Events")]))
        return b

    def all(self) -> dict[str, Board]:
        return {"city-overview.json": self.overview(), "traffic.json": self.traffic(),
                "flood.json": self.flood(), "smart-home.json": self.home(),
                "exhibitor-devices.json": self.exhibitors(),
                "operations.json": self.operations()}


def render(board: Board) -> str:
    return json.dumps(board.json(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a stored board differs")
    parser.add_argument("--city", help="city file (default: the built-in Ho Chi Minh City)")
    parser.add_argument("--rules", help="rule file (default: the built-in HCMC rules)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    city = load_city(args.city)
    boards = Boards(city, load_rules(args.rules).with_city(city)).all()
    stale = []
    for name, board in boards.items():
        path = args.out / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python grafana/build_dashboards.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
