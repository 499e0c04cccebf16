@dns @lab
Feature: DNS goes only through Tor
  Names are resolved by Tor's DNSPort; no DNS query reaches the LAN's
  resolver or anything else outside Tor, and a direct query to the LAN's
  resolver fails.

  Background:
    Given the lab's network is running
    And a computer at checkpoint "online"

  @attempts-blocked-traffic
  Scenario: No DNS query leaves the guest outside Tor
    When I capture the guest's traffic for 8 seconds
    Then no DNS left the guest outside Tor
    And the lab's resolver saw no query
    When I run "nslookup check.torproject.org 10.203.0.1" as "amnesia" in the guest
    Then the command fails
    And the lab's resolver saw no query
