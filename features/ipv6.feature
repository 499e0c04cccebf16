@ipv6 @lab
Feature: No IPv6 leaves the guest
  Tor-only means IPv4 to relays: not one IPv6 frame leaves the guest, even
  on a LAN that offers IPv6 with router advertisements. Not even the
  neighbour discovery an IPv6 stack does by itself (router solicitations,
  MLD reports, duplicate address detection): a machine that answers the
  LAN's advertisements announces itself on it.

  Background:
    Given the lab's network is running
    And a computer at checkpoint "online"

  Scenario: No IPv6 packet leaves the guest
    When the lab advertises IPv6 within 60 seconds
    And I capture the guest's traffic for 8 seconds
    Then the lab advertised IPv6 to the guest
    And no IPv6 left the guest
