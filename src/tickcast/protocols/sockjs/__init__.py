"""SockJS 0.3.3, sans-I/O: frames (``framing``), sessions that outlive one HTTP request
(``session``) and the URL, ``/info`` and header rules (``urls``).

Rules: pure. Nothing here reads a clock, opens a socket or knows ASGI: a driver parses
the path with ``urls.parse``, feeds a ``SockJSSession`` what happened (a receiving
request attached, a payload posted, a timer due, with ``now`` passed in) and writes the
bytes its ``Receiver`` holds. What the protocol's own test suite (sockjs-protocol
0.3.3) expects of a server is what these modules do.
"""
