"""The billing side's client for the AudioCodes CMMS provisioning API (no Temporal in here)."""

from cmms.client import CmmsClient, CmmsError, CmmsMisconfigured, CmmsRejected, CmmsUnavailable

__all__ = ["CmmsClient", "CmmsError", "CmmsMisconfigured", "CmmsRejected", "CmmsUnavailable"]
