"""Helpers of compare_ansible.py: our config, Ansible's inputs rendered from our steps, the timed runs."""
