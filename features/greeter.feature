@derivative @greeter
Feature: The greeter
  The reference derivative boots to its graphical greeter. A person starts
  it with the keyboard alone or with the mouse, and may first set an
  administration password in the additional settings. The harness can run
  commands in the guest through its agent.

  Background:
    Given a computer at checkpoint "greeter"

  Scenario: The greeter shows its choices and no administration password is set
    Then I see "greeter-welcome" within 30 seconds
    And no administration password is set

  # A bridges derivative asks how to connect first: see bridges.feature.
  @kind-tor @kind-vpn
  Scenario: Start with the keyboard only
    When I press "Return"
    Then I see "greeter-connecting" or "greeter-vpn-starting" within 60 seconds
    And the serial console shows "tailor-init: firewall loaded" within 60 seconds

  # A bridges derivative asks how to connect first: see bridges.feature.
  @kind-tor @kind-vpn
  Scenario: Start with the mouse
    When I click "greeter-start"
    Then I see "greeter-connecting" or "greeter-vpn-starting" within 60 seconds
    And the serial console shows "tailor-init: firewall loaded" within 60 seconds

  Scenario: Set the administration password with the keyboard
    When I press "Down"
    And I press "Return"
    Then I see "greeter-settings" within 30 seconds
    When I type "correct horse"
    And I press "Return"
    Then I see "greeter-password-set" within 30 seconds
    And the administration password is "correct horse"

  Scenario: Set the administration password with the mouse
    When I click "greeter-additional-settings"
    Then I see "greeter-settings" within 30 seconds
    When I type "battery staple"
    And I click "greeter-save"
    Then I see "greeter-password-set" within 30 seconds
    And the administration password is "battery staple"

  Scenario: The guest shell answers
    When I run "cat /etc/os-release; id -u" in the guest
    Then the command succeeds
    And its output contains "0"
