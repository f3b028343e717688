import SwitchyardCLI

await Switchyard.runMain()
