"""The broker's side of smartcity: Mosquitto's configuration, accounts and MQTT clients."""
