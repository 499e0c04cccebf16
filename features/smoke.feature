@smoke
Feature: Driving a computer through QEMU
  The foundation every security feature stands on: a real guest boots under
  QEMU, takes keyboard and mouse input like a person's, shows the result on
  its screen, and can be put back into a saved state.

  Background:
    Given a computer at checkpoint "smoke-shell"

  Scenario: A booted computer reaches its shell
    Given the computer boots from "smoke"
    Then the serial console shows "TAILOR-SMOKE-SHELL" within 90 seconds

  Scenario: Typed text shows up on the screen
    When I type "clear; echo 'Tailor: READY!' | tr R r"
    And I press "Return"
    Then I see "smoke-ready" within 30 seconds

  Scenario: A checkpoint brings the screen back
    When I type "clear; echo 'Tailor: READY!' | tr R r"
    And I press "Return"
    Then I see "smoke-ready" within 30 seconds
    When I save the checkpoint "ready"
    And I type "clear"
    And I press "Return"
    Then I no longer see "smoke-ready" within 30 seconds
    When I restore the checkpoint "ready"
    Then I see "smoke-ready" within 30 seconds

  Scenario: Clicks reach the guest and it powers off
    When I type "clear; echo 'Tailor: READY!' | tr R r"
    And I press "Return"
    Then I see "smoke-ready" within 30 seconds
    When I click "smoke-ready"
    Then the serial console shows "TAILOR-MOUSE left" within 30 seconds
    When I type "poweroff -f"
    And I press "Return"
    Then the computer powers off within 60 seconds
