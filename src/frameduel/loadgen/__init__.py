"""The load generator: closed- and open-loop load against any KServe v2 server, over REST or gRPC. A client:
it imports the wire format (v2/), never the server."""
