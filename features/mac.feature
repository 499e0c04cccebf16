@mac @lab
Feature: MAC address spoofing
  The guest's frames carry a random MAC, never the NIC's real one, before
  Start (at the greeter) and after it, and the same one throughout. The
  real MAC appears nowhere in what the guest sends: not as a frame's
  source, not in ARP, not in DHCP's client hardware address or client
  identifier, not inside an IPv6 address.

  Background:
    Given the lab's network is running
    And a computer at checkpoint "lab-greeter"

  Scenario: The guest's frames never carry the NIC's MAC, before and after Start
    When I capture the guest's traffic for 3 seconds
    And I choose Start on the lab
    Then the guest is online within 180 seconds
    When I capture the guest's traffic for 8 seconds
    Then the guest's MAC address was spoofed
