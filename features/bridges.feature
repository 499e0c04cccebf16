@bridges @lab @kind-bridges
Feature: Tor through bridges
  A derivative that ships bridges reaches Tor through them and never
  touches the public relays directly: not while bootstrapping, not after a
  reconnect. When Tor is blocked, the greeter says so within a bounded
  time and offers the default bridges. The lab's bridges (one vanilla, two
  obfs4 through obfs4proxy) are not in the consensus; the harness writes
  their lines into the guest before Start, in place of the derivative's.

  Background:
    Given the lab's bridges are running

  Scenario: Tor through a vanilla bridge
    Given a computer at checkpoint "lab-greeter"
    And the derivative is configured to use the lab's "vanilla" bridge
    When I choose Start on the lab
    Then Tor is ready within 180 seconds
    When I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    And all Internet traffic has only flowed through the configured bridges

  Scenario: Tor through an obfs4 bridge
    Given a computer at checkpoint "lab-greeter"
    And the derivative is configured to use the lab's "obfs4" bridge
    When I choose Start on the lab
    Then Tor is ready within 180 seconds
    When I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    And all Internet traffic has only flowed through the configured bridges

  Scenario: Tor through the default bridges, also after a network reconnect
    Given a computer at checkpoint "lab-greeter"
    When I choose Start on the lab
    Then I see "greeter-tor-ready" within 180 seconds
    When I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    When I unplug and replug the network cable
    And I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    And all Internet traffic has only flowed through the default bridges

  Scenario: Where Tor is blocked, the greeter says so and the default bridges get through
    Given the lab blocks direct connections to Tor
    And a computer at checkpoint "lab-greeter"
    When I choose Start on the lab and connect to Tor directly
    Then the greeter says Tor could not connect within 120 seconds
    And the lab blocked the guest's direct connections to Tor
    When I choose the default bridges
    Then Tor is ready within 180 seconds
    When I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    And all Internet traffic has only flowed through the default bridges

  Scenario: A bridge with a wrong obfs4 certificate does not bootstrap
    Given a computer at checkpoint "lab-greeter"
    And the derivative is configured to use the lab's "obfs4 with a wrong certificate" bridge
    When I choose Start on the lab
    Then the greeter says Tor could not connect within 120 seconds
    And all Internet traffic has only flowed through the configured bridges
