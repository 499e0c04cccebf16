@lab
Feature: A restored guest is held to its story from power-on
  Read by tests/fingerprint_vm.rs. The first scenario reaches the online
  checkpoint from power-on in its own VM (one more boot of the reference);
  the second restores it, so its fingerprint is read from the capture
  kept as the checkpoint was saved, then its own.

  Background:
    Given the lab's network is running
    And a computer at checkpoint "online"

  Scenario: Reached from power-on
    When I fetch the lab's web page in the guest
    Then the fetched page is the lab's web page
    And the guest looks like the reference derivative on the network

  Scenario: Restored from the checkpoint
    When I fetch the lab's web page in the guest
    Then the fetched page is the lab's web page
    And the guest looks like the reference derivative on the network
