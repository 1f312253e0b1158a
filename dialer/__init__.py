"""An outbound dialer for FreeSWITCH: RQ workers running many calls each as greenlets over ESL."""

__version__ = "0.1.0"
