# smartcity exhibitor device on an ESP32 with MicroPython: copy config.py, smartcity_device.py
# and this file to the board (mpremote cp *.py :), install umqtt.simple
# (mpremote mip install umqtt.simple), reset. Replace read_sensor() with your sensor.
import time

import config
import machine
import network
import ntptime
import ubinascii
from smartcity_device import Device


def wifi():
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(config.WIFI_SSID, config.WIFI_PASSWORD)
        for _ in range(40):
            if wlan.isconnected():
                break
            time.sleep(0.5)
    print("wifi:", wlan.ifconfig())


def read_sensor():
    # An ultrasonic or pressure depth sensor goes here; a potentiometer on GPIO34 stands in.
    adc = machine.ADC(machine.Pin(34))
    adc.atten(machine.ADC.ATTN_11DB)
    return {"water_level_cm": round(adc.read() / 4095 * 100, 1)}


def main():
    wifi()
    ntptime.settime()  # readings carry real time
    # The exhibit takes a device's account only under its own client id: the username.
    device = Device(config, config.USERNAME.encode() if config.USERNAME else
                    b"esp32-" + ubinascii.hexlify(machine.unique_id()))
    device.connect()
    while True:
        try:
            device.send(read_sensor())
        except OSError as e:  # Wi-Fi or broker lost: reconnect and go on
            print("reconnecting:", e)
            time.sleep(5)
            device.connect()
        time.sleep(config.INTERVAL_S)


main()
