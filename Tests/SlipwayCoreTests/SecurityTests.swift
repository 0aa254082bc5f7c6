import Foundation
import Logging
import Testing

@testable import SlipwayCore

/// One test per threat of SECURITY.md's review round (issue 16): each reproduces the attack.
@Suite struct SecurityTests {
    let dir = TempDirectory()

    // 1. The matcher decodes only as the intake decided, whatever unsigned headers say.
    @Test func storedMediaTypeDecidesTheFormatNotTheHeaders() throws {
        let fake = #"{"ref":"refs/heads/main","after":"\#(String(repeating: "f", count: 40))","repository":{"clone_url":"https://github.com/evil/repo.git"}}"#
        let encoded = fake.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let json = #"{"ref":"refs/heads/main","after":"\#(String(repeating: "a", count: 40))","head_commit":{"message":"x&payload=\#(encoded)"},"repository":{"clone_url":"https://github.com/octo-org/aci-helloworld.git"}}"#
        // Signed JSON, re-posted with an extra header that names the form media type.
        let event = StoredEvent(
            seq: 1, receivedAt: "", deliveryID: "d", hookID: "", eventType: "push", signature: "sha256:/s",
            headersJSON: #"{"content-type":"application/json","x-extra":"application/x-www-form-urlencoded"}"#, body: Array(json.utf8),
            mediaType: "application/json")
        let push = try PushEvent.decode(event)
        #expect(push.after == String(repeating: "a", count: 40))
        #expect(push.repositoryURLs == ["https://github.com/octo-org/aci-helloworld.git"])
        // Events stored before the media type was recorded: only the content-type header's exact value counts.
        var legacy = event
        legacy.mediaType = ""
        #expect(try PushEvent.decode(legacy).after == String(repeating: "a", count: 40))
    }

    // 2. Symlink chains: resolved like the kernel (realpath), fail closed.
    func chain(_ length: Int, to target: String, in root: String) throws -> String {
        var previous = target
        for n in (0..<length).reversed() {
            let link = "\(root)/l\(n)"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: previous)
            previous = link
        }
        return previous
    }

    @Test(arguments: [1, 21, 22, 39])
    func symlinkChainsOutOfTheCheckoutAreRefused(length: Int) throws {
        let root = dir.path + "/work"
        try FileManager.default.createDirectory(atPath: root + "/app", withIntermediateDirectories: true)
        let secret = dir.write("secret.txt", "top secret")
        let first = try chain(length, to: secret, in: root)
        try FileManager.default.createSymbolicLink(atPath: root + "/app/Dockerfile", withDestinationPath: first)
        #expect {
            try DockerSteps.contained("app/Dockerfile", in: root, what: "dockerfile", directory: false)
        } throws: { error in
            (error as? StepFailure)?.reason == "dockerfile 'app/Dockerfile' leads outside the repository"
        }
    }

    @Test func devicesLoopsAndDirectoryLinksAreRefused() throws {
        let root = dir.path + "/work"
        try FileManager.default.createDirectory(atPath: root + "/app", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/zero", withDestinationPath: "/dev/zero")
        #expect(throws: StepFailure.self) { try DockerSteps.contained("zero", in: root, what: "dockerfile", directory: false) }
        try FileManager.default.createSymbolicLink(atPath: root + "/a", withDestinationPath: root + "/b")
        try FileManager.default.createSymbolicLink(atPath: root + "/b", withDestinationPath: root + "/a")
        #expect {
            try DockerSteps.contained("a", in: root, what: "dockerfile", directory: false)
        } throws: { error in
            (error as? StepFailure)?.reason.contains("cannot be resolved") == true
        }
        try FileManager.default.createSymbolicLink(atPath: root + "/ctx", withDestinationPath: "/etc")
        #expect(throws: StepFailure.self) { try DockerSteps.contained("ctx", in: root, what: "context folder", directory: true) }
        // Links that stay inside are fine.
        FileManager.default.createFile(atPath: root + "/app/Dockerfile", contents: Data("FROM scratch\n".utf8))
        try FileManager.default.createSymbolicLink(atPath: root + "/inside", withDestinationPath: "app/Dockerfile")
        #expect(try DockerSteps.contained("inside", in: root, what: "dockerfile", directory: false).hasSuffix("/app/Dockerfile"))
    }

    // 5. A secret of several lines is masked line by line.
    @Test func multiLineSecretsAreMaskedLineByLine() {
        let key = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA7\nshort\n-----END KEY-----\n"
        let masker = SecretMasker([key])
        #expect(masker.mask("RUN echo MIIEowIBAAKCAQEA7") == "RUN echo ***")
        #expect(masker.mask("-----BEGIN KEY-----") == "***")
        #expect(masker.mask("short") == "short", "lines under 6 characters would mask ordinary words")
        #expect(!masker.mask(key).contains("MIIE") && !masker.mask(key).contains("BEGIN"))
    }

    // 6. One mirror per exact URL.
    @Test func mirrorsAreKeyedByTheExactURL() throws {
        let config = try ConfigLoader.parse("data_dir: \"\(dir.path)\"\n", file: dir.path + "/s.yaml")
        let environment = BuildEnvironment(config: config, path: "/bin", dockerHost: nil)
        let steps = StepRunner(
            log: try RunLog(path: dir.path + "/l.log", masker: SecretMasker(), logger: Logger(label: "t")), deadline: .now,
            timeoutText: "0s", stop: StopSignal())
        let git = GitSteps(steps: steps, environment: environment, scratch: dir.path, tokenFile: nil, mirrors: KeyedLock())
        #expect(git.mirrorPath(url: "http://h/a/b.git") != git.mirrorPath(url: "https://h/a/b.git"))
        #expect(git.mirrorPath(url: "https://h/a/b.git") == git.mirrorPath(url: "https://h/a/b.git"))
    }

    // 8. A run's DOCKER_CONFIG holds only the registries its images name.
    @Test func dockerConfigHoldsOnlyTheNamedRegistries() throws {
        dir.write("pw-a", "alpha-password")
        dir.write("pw-b", "bravo-password")
        let config = try ConfigLoader.parse(
            """
            data_dir: "\(dir.path)"
            registries:
              - { server: "a.example.com", username: "ci", password_file: "pw-a" }
              - { server: "b.example.com", username: "ci", password_file: "pw-b" }
            """, file: dir.path + "/s.yaml")
        let environment = BuildEnvironment(config: config, path: "/bin", dockerHost: nil)
        let secrets = try RunSecrets(task: nil, registries: environment.registries)
        let steps = StepRunner(
            log: try RunLog(path: dir.path + "/l.log", masker: SecretMasker(), logger: Logger(label: "t")), deadline: .now,
            timeoutText: "0s", stop: StopSignal())
        let docker = DockerSteps(steps: steps, environment: environment, scratch: dir.path + "/scratch", secrets: secrets)
        #expect(try docker.writeConfig(for: ["a.example.com/team/web:1", "busybox:1"]) == ["a.example.com"])
        let written = try String(contentsOfFile: dir.path + "/scratch/docker/config.json", encoding: .utf8)
        #expect(written.contains("a.example.com") && !written.contains("b.example.com"))
        #expect(try docker.writeConfig(for: []) == [])
    }

    // 9. The smaller ones.
    @Test func smallerHoles() throws {
        #expect(!TaskMatcher.isCommitSHA(String(repeating: "１", count: 40)), "full-width digits are not hex")
        #expect(TaskMatcher.isCommitSHA(String(repeating: "a1", count: 20)))
        #expect(throws: DockerReference.Invalid.self) { try DockerReference("-registry.example.com/web:1") }
        #expect(throws: GitContext.Invalid.self) { try GitContext.parse("https://ghp_token123@github.com/o/r.git#main") }
        dir.write("npm", "token")
        for name in ["DOCKER_HOST", "PATH", "HOME", "LD_PRELOAD", "docker_config"] {
            let yaml = """
                tasks:
                  - name: web
                    context: "https://github.com/o/web.git#main"
                    tags: ["r/web:latest"]
                    secret_build_args: { \(name): "npm" }
                """
            #expect {
                try ConfigLoader.parse(yaml, file: dir.path + "/slipway.yaml")
            } throws: { error in
                "\(error)".contains("secret build arg '\(name)' would override the docker CLI's environment variable")
            }
        }
        #expect(SlipwayConfig.isLoopback("127.0.0.1") && SlipwayConfig.isLoopback("::1") && SlipwayConfig.isLoopback("localhost"))
        #expect(!SlipwayConfig.isLoopback("0.0.0.0") && !SlipwayConfig.isLoopback("10.0.0.1"))
    }
}
