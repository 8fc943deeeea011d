"""Adapters that put our reward server and estimators inside verl, TRL and OpenRLHF."""
