@derivative @greeter
Feature: The greeter and the guest shell
  The reference derivative boots to its graphical greeter; a person starts
  it with the keyboard, optionally setting an administration password
  first. The harness can run commands in the guest through its agent.

  Background:
    Given a computer at checkpoint "greeter"

  Scenario: The greeter shows its choices
    Then I see "greeter-welcome" within 30 seconds

  Scenario: The guest shell answers
    When I run "cat /etc/os-release; id -u" in the guest
    Then the command succeeds
    And its output contains "0"
