# Fill in what `smartcity devices add` (or POST /api/v1/devices) printed for your device.
WIFI_SSID = "exhibit-devices"
WIFI_PASSWORD = "..."
BROKER_HOST = "exhibit.local"
BROKER_PORT = 1883
USERNAME = "dev-booth-a3-1f2e"
PASSWORD = "..."
ROOT = "city"
DOMAIN = "flood"
DEVICE_ID = "booth-a3-1f2e"
INTERVAL_S = 5
