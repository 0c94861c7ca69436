"""A second simulator on a port already taken says which option to give
it (the README's test rig runs several at once)."""
import subprocess

from conftest import SIM_BIN


def run_sim(*args):
    return subprocess.run([SIM_BIN] + list(args), capture_output=True, text=True,
                          timeout=10, stdin=subprocess.DEVNULL)


def test_a_taken_control_endpoint_names_the_c_option(sim):
    r = run_sim("-p", "0", "-c", sim.control)
    assert r.returncode != 0, r
    assert "Address already in use" in r.stderr and "with -c" in r.stderr, r.stderr


def test_a_taken_modbus_port_names_the_p_option(sim):
    r = run_sim("-p", str(sim.port), "-c", "tcp://127.0.0.1:*")
    assert r.returncode != 0, r
    assert "Address already in use" in r.stderr and "with -p" in r.stderr, r.stderr
