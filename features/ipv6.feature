@ipv6 @lab
Feature: No IPv6 leaves the guest
  Tor-only means IPv4 to relays: the firewall drops every IPv6 packet
  (link-local autoconfiguration before the firewall is reported, not a leak).

  Background:
    Given the Tor network is running
    And a computer at checkpoint "tor-ready"

  Scenario: No IPv6 packet leaves the guest
    When I capture the guest's traffic for 12 seconds
    Then no IPv6 left the guest
