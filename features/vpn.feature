@vpn @lab @kind-vpn
Feature: Everything through the VPN
  A VPN derivative sends everything through one tunnel to the lab's VPN
  server (WireGuard). The lab's "Internet" (a web server and a resolver)
  is reachable only from the tunnel's far side: it sees the VPN's
  address, never the guest's. Names are resolved through the tunnel.
  Before the tunnel is up and whenever it is down (cable out, VPN server
  gone) the kill switch lets nothing out but the tunnel's own packets to
  the endpoint, and nothing ever reaches the LAN outside the tunnel; when
  the VPN comes back, traffic resumes through it.

  Background:
    Given the lab's network is running
    And a computer at checkpoint "online"

  @attempts-blocked-traffic
  Scenario: A page fetched through the VPN leaves only tunnel traffic
    Then I see "greeter-vpn-connected" within 30 seconds
    When I fetch "http://www.example.com/" through the VPN as "amnesia" in the guest
    Then no DNS left the guest outside the tunnel
    And the fetched page is the lab's web page
    # Only the tunnel's own packets may go to the endpoint, not an
    # application's: tftp sends UDP to the endpoint's port in the clear.
    When I note the firewall's state
    And I run "cd /tmp && tftp -g -r leak 10.203.0.3 51820" as "amnesia" in the guest
    Then the command fails
    And the firewall's "rejected_output" counter went up
    When I capture the guest's traffic for 5 seconds
    Then all Internet traffic has only flowed through the VPN
    And the web server saw only the VPN's address

  @attempts-blocked-traffic
  Scenario: Nothing leaves outside the tunnel when it goes down, and nothing reaches the LAN
    Given an application keeps fetching "http://www.example.com/" in the guest
    When I unplug and replug the network cable
    Then the guest is online within 60 seconds
    When the lab's VPN server stops
    Then the guest's VPN is down within 30 seconds
    And I see "greeter-vpn-connecting" or "greeter-vpn-reconnecting" within 10 seconds
    When I run "curl --silent --show-error --max-time 5 http://198.51.100.80/" as "amnesia" in the guest
    Then the command fails
    And all Internet traffic has only flowed through the VPN
    When the lab's VPN server starts again
    Then the guest is online within 60 seconds
    When I fetch "http://www.example.com/" through the VPN in the guest
    Then the fetched page is the lab's web page
    When I run "curl --silent --show-error --max-time 5 http://10.203.0.1/" as "amnesia" in the guest
    Then the command fails
    And all Internet traffic has only flowed through the VPN
    And the web server saw only the VPN's address
