import ArgumentParser
import SlipwayCore

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with the config file.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the config (and tasks.d/*.yaml); print every problem; exit 0 when valid, 1 when not.")

        @OptionGroup var options: ConfigOption

        func run() throws {
            do {
                let config = try ConfigLoader.load(path: options.path)
                FileHandleOutput.stdout(
                    "\(options.path): OK (\(config.tasks.count) task\(config.tasks.count == 1 ? "" : "s"), "
                        + "\(config.registries.count) registr\(config.registries.count == 1 ? "y" : "ies"), "
                        + "listening on \(config.listen))")
            } catch {
                for problem in error.errors { FileHandleOutput.stderr(problem.description) }
                FileHandleOutput.stderr("\(options.path): \(error.errors.count) problem\(error.errors.count == 1 ? "" : "s") found")
                throw ExitCode(1)
            }
        }
    }
}
