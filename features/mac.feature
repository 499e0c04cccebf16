@mac @lab
Feature: MAC address spoofing
  After Start the guest's frames carry a random MAC, never the NIC's real
  one, and the same one throughout.

  Background:
    Given the Tor network is running
    And a computer at checkpoint "tor-ready"

  Scenario: The guest's frames never carry the NIC's MAC
    When I capture the guest's traffic for 12 seconds
    Then the guest's MAC address was spoofed
