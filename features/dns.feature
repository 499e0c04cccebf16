@dns @lab
Feature: DNS goes only through Tor
  Names are resolved by Tor's DNSPort; no DNS query reaches the LAN's
  resolver or anything else outside Tor.

  Background:
    Given the Tor network is running
    And a computer at checkpoint "tor-ready"

  Scenario: No DNS query leaves the guest outside Tor
    When I capture the guest's traffic for 12 seconds
    Then no DNS left the guest outside Tor
