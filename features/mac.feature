@mac @lab
Feature: MAC address spoofing
  The guest's frames carry a random MAC, never the NIC's real one, before
  Start (at the greeter) and after it, and the same one throughout.

  Background:
    Given the Tor network is running
    And a computer at checkpoint "lab-greeter"

  Scenario: The guest's frames never carry the NIC's MAC, before and after Start
    When I capture the guest's traffic for 3 seconds
    And I choose Start with the lab's Tor network
    # On a warm Tor network the greeter may pass "connecting" before the
    # screen is looked at; either screen proves Start was taken.
    Then I see "greeter-connecting" or "greeter-tor-ready" within 60 seconds
    And Tor is ready within 180 seconds
    When I capture the guest's traffic for 8 seconds
    Then the guest's MAC address was spoofed
