// swift-tools-version:6.1
// The floor under any proxy built on SwiftNIO's HTTP/1.1 codec, for bench/proxy-overhead.sh: a
// reverse proxy with no gateway logic at all (no parsing, routing, metrics, logging or timeouts).
// A separate package so the gateway's build and CI do not carry it.
import PackageDescription

let package = Package(
    name: "nio-floor",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")
    ],
    targets: [
        .executableTarget(
            name: "nio-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        )
    ]
)
