@tor @lab @kind-tor
Feature: Tor-only traffic
  The derivative's Tor bootstraps through the lab's private Tor network and
  reaches "the Internet" (the lab web server) only through Tor: every packet
  the guest sends goes to a relay of the consensus, and the web server sees
  the exits, never the guest.

  Background:
    Given the Tor network is running
    And a computer at checkpoint "tor-ready"

  Scenario: A page fetched through Tor leaves only Tor traffic
    Then I see "greeter-tor-ready" within 30 seconds
    When I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    When I capture the guest's traffic for 8 seconds
    Then all Internet traffic has only flowed through Tor
