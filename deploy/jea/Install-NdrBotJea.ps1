#Requires -Version 5.1
#Requires -RunAsAdministrator
<#
.SYNOPSIS
    Installs (or removes) ndrbot's JEA endpoint "ndrbot" on one Exchange server.

.DESCRIPTION
    Run once per Exchange server, in an elevated Windows PowerShell 5.1 console ON
    that server (not over PowerShell remoting: registering an endpoint restarts the
    WinRM service and would cut your own session).

    Install (default):
      1. copies NdrBot.psrc to
         $env:ProgramFiles\WindowsPowerShell\Modules\NdrBotJea\RoleCapabilities\
         and creates the module manifest NdrBotJea.psd1 beside it (a role capability
         is only found inside a module on $env:PSModulePath);
      2. creates the transcript folder, readable by SYSTEM and Administrators only;
      3. writes the session configuration from NdrBot.pssc with your AD group in
         RoleDefinitions, and checks it with Test-PSSessionConfigurationFile;
      4. registers it: Register-PSSessionConfiguration -Name ndrbot -Path ... -Force
         (skipped when the same configuration is already registered).
    Running it again changes only what differs (idempotent). -WhatIf shows what it
    would do. -Uninstall unregisters the endpoint and removes the module (the
    transcripts stay unless -RemoveTranscripts).

    Sources: "JEA Role Capabilities", "JEA Session Configurations", "Registering JEA
    Configurations" (learn.microsoft.com/powershell/scripting/security/remoting/jea/).
    Not verified against a live server.

.PARAMETER JeaGroup
    The AD group (DOMAIN\Name) whose members may use the endpoint: the group that
    holds ndrbot's service account, e.g. CONTOSO\NdrBot-JEA.

.PARAMETER EndpointName
    The session configuration name; ndrbot.yaml's configuration_name. Default ndrbot.

.PARAMETER TranscriptDirectory
    Where JEA writes one transcript per session. Default
    C:\ProgramData\NdrBotJea\Transcripts (the value in NdrBot.pssc).

.PARAMETER Uninstall
    Unregister the endpoint and remove the NdrBotJea module.

.PARAMETER RemoveTranscripts
    With -Uninstall: also delete the transcript folder.

.EXAMPLE
    .\Install-NdrBotJea.ps1 -JeaGroup 'CONTOSO\NdrBot-JEA' -WhatIf
    .\Install-NdrBotJea.ps1 -JeaGroup 'CONTOSO\NdrBot-JEA'

.EXAMPLE
    .\Install-NdrBotJea.ps1 -Uninstall
#>
[CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'Install')]
param(
    [Parameter(Mandatory = $true, ParameterSetName = 'Install')]
    [ValidatePattern('^[^\\/:*?"<>|]+\\[^\\/:*?"<>|]+$')]
    [string] $JeaGroup,

    [Parameter(ParameterSetName = 'Install')]
    [Parameter(ParameterSetName = 'Uninstall')]
    [ValidatePattern('^[A-Za-z][A-Za-z0-9.-]{0,63}$')]
    [string] $EndpointName = 'ndrbot',

    [Parameter(ParameterSetName = 'Install')]
    [string] $TranscriptDirectory,

    [Parameter(Mandatory = $true, ParameterSetName = 'Uninstall')]
    [switch] $Uninstall,

    [Parameter(ParameterSetName = 'Uninstall')]
    [switch] $RemoveTranscripts
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

# JEA endpoints for Exchange servers are Windows PowerShell 5.1 endpoints. In
# PowerShell 7, Register-PSSessionConfiguration registers a PowerShell 7 endpoint.
if ($PSVersionTable.PSEdition -ne 'Desktop') {
    throw 'Run this in Windows PowerShell 5.1 (powershell.exe), not PowerShell 7 (pwsh.exe).'
}

$ModuleName     = 'NdrBotJea'
$RoleName       = 'NdrBot'                      # base name of the .psrc
$ModuleRoot     = Join-Path $env:ProgramFiles "WindowsPowerShell\Modules\$ModuleName"
$RoleFolder     = Join-Path $ModuleRoot 'RoleCapabilities'
$ManifestPath   = Join-Path $ModuleRoot "$ModuleName.psd1"
$StateFolder    = Join-Path $env:ProgramData $ModuleName
$RegisteredCopy = Join-Path $StateFolder "$EndpointName.pssc"   # what we last registered
$SourcePsrc     = Join-Path $PSScriptRoot "$RoleName.psrc"
$SourcePssc     = Join-Path $PSScriptRoot "$RoleName.pssc"

function Get-Endpoint([string] $Name) {
    Get-PSSessionConfiguration -Name $Name -ErrorAction SilentlyContinue
}

function Test-SameFile([string] $A, [string] $B) {
    if (-not (Test-Path -LiteralPath $A) -or -not (Test-Path -LiteralPath $B)) { return $false }
    (Get-FileHash -LiteralPath $A).Hash -eq (Get-FileHash -LiteralPath $B).Hash
}

function Set-RestrictedAcl([string] $Path) {
    # SYSTEM writes the transcripts; Administrators read them; nobody else.
    $acl = New-Object System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    $none = [System.Security.AccessControl.PropagationFlags]::None
    foreach ($sid in 'S-1-5-18', 'S-1-5-32-544') {   # LocalSystem, BUILTIN\Administrators
        $id = New-Object System.Security.Principal.SecurityIdentifier($sid)
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($id, 'FullControl', $inherit, $none, 'Allow')
        $acl.AddAccessRule($rule)
    }
    Set-Acl -LiteralPath $Path -AclObject $acl
}

# ---------------------------------------------------------------------------------
# Uninstall
# ---------------------------------------------------------------------------------
if ($Uninstall) {
    if (Get-Endpoint $EndpointName) {
        if ($PSCmdlet.ShouldProcess($EndpointName, 'Unregister-PSSessionConfiguration (restarts WinRM)')) {
            Unregister-PSSessionConfiguration -Name $EndpointName -Force
        }
    }
    else {
        Write-Verbose "Endpoint '$EndpointName' is not registered."
    }
    if (Test-Path -LiteralPath $ModuleRoot) {
        if ($PSCmdlet.ShouldProcess($ModuleRoot, 'Remove module folder')) {
            Remove-Item -LiteralPath $ModuleRoot -Recurse -Force
        }
    }
    if (Test-Path -LiteralPath $RegisteredCopy) {
        if ($PSCmdlet.ShouldProcess($RegisteredCopy, 'Remove registered copy')) {
            Remove-Item -LiteralPath $RegisteredCopy -Force
        }
    }
    if ($RemoveTranscripts -and (Test-Path -LiteralPath $StateFolder)) {
        if ($PSCmdlet.ShouldProcess($StateFolder, 'Remove transcripts and state folder')) {
            Remove-Item -LiteralPath $StateFolder -Recurse -Force
        }
    }
    elseif (Test-Path -LiteralPath $StateFolder) {
        Write-Host "Transcripts kept in $StateFolder (use -RemoveTranscripts to delete them)."
    }
    Write-Host "ndrbot JEA endpoint '$EndpointName' removed from $env:COMPUTERNAME."
    return
}

# ---------------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------------
foreach ($f in $SourcePsrc, $SourcePssc) {
    if (-not (Test-Path -LiteralPath $f)) { throw "Missing $f - run the script from deploy\jea\ with its two data files beside it." }
}

# The role capability must at least parse (there is no Test-* cmdlet for .psrc; the
# real check is Get-PSSessionCapability after registration, printed at the end).
$tokens = $null; $parseErrors = $null
[void][System.Management.Automation.Language.Parser]::ParseFile($SourcePsrc, [ref] $tokens, [ref] $parseErrors)
if ($parseErrors) { throw "NdrBot.psrc does not parse: $($parseErrors[0].Message) (line $($parseErrors[0].Extent.StartLineNumber))" }

# Is this an Exchange transport server? Warn only: the endpoint itself works anyway.
$transport = Get-Service -Name MSExchangeTransport -ErrorAction SilentlyContinue
if (-not $transport) {
    Write-Warning "MSExchangeTransport does not exist on $env:COMPUTERNAME: the restart relief will fail here."
}
else {
    $dependants = @($transport.DependentServices)
    if ($dependants.Count -gt 0) {
        Write-Warning ("MSExchangeTransport has dependent services ({0}); Restart-Service without -Force will refuse to stop it while they run. Review NdrBot.psrc." -f (($dependants | ForEach-Object { $_.Name }) -join ', '))
    }
    else {
        Write-Verbose 'MSExchangeTransport has no dependent services: Restart-Service needs no -Force.'
    }
}

# 1. Module with the role capability.
if (-not (Test-Path -LiteralPath $RoleFolder)) {
    if ($PSCmdlet.ShouldProcess($RoleFolder, 'Create folder')) {
        New-Item -ItemType Directory -Path $RoleFolder -Force | Out-Null
    }
}
$targetPsrc = Join-Path $RoleFolder "$RoleName.psrc"
if (-not (Test-SameFile $SourcePsrc $targetPsrc)) {
    if ($PSCmdlet.ShouldProcess($targetPsrc, 'Copy role capability')) {
        Copy-Item -LiteralPath $SourcePsrc -Destination $targetPsrc -Force
    }
}
else {
    Write-Verbose "$targetPsrc is up to date."
}
if (-not (Test-Path -LiteralPath $ManifestPath)) {
    # "At least one file in the module folder must have the same name as the folder
    # itself" ("JEA Role Capabilities"): the manifest is that file.
    if ($PSCmdlet.ShouldProcess($ManifestPath, 'New-ModuleManifest')) {
        New-ModuleManifest -Path $ManifestPath -ModuleVersion '1.0.0' -Author 'ndrbot' `
            -Guid '0f4f5e0a-8a3b-4a43-b1d5-8d3f6f0a9c12' `
            -Description 'Role capabilities for the ndrbot JEA endpoint (RoleCapabilities\NdrBot.psrc).'
    }
}

# 2. Transcript folder.
$settings = Import-PowerShellDataFile -LiteralPath $SourcePssc
if ($TranscriptDirectory) { $settings['TranscriptDirectory'] = $TranscriptDirectory }
$transcripts = $settings['TranscriptDirectory']
if (-not (Test-Path -LiteralPath $transcripts)) {
    if ($PSCmdlet.ShouldProcess($transcripts, 'Create transcript folder (SYSTEM and Administrators only)')) {
        New-Item -ItemType Directory -Path $transcripts -Force | Out-Null
        Set-RestrictedAcl $transcripts
    }
}

# 3. Session configuration with the real group.
$settings['RoleDefinitions'] = @{ $JeaGroup = @{ RoleCapabilities = $RoleName } }
$generated = Join-Path ([System.IO.Path]::GetTempPath()) ("ndrbot-{0}.pssc" -f [guid]::NewGuid().ToString('N'))
New-PSSessionConfigurationFile -Path $generated @settings
try {
    if (-not (Test-PSSessionConfigurationFile -Path $generated)) {
        throw "Test-PSSessionConfigurationFile rejected the generated configuration ($generated)."
    }

    # 4. Register (or re-register when the configuration changed).
    $existing = Get-Endpoint $EndpointName
    if ($existing -and (Test-SameFile $generated $RegisteredCopy)) {
        Write-Host "Endpoint '$EndpointName' is already registered with this configuration."
    }
    else {
        if ($existing) {
            if ($PSCmdlet.ShouldProcess($EndpointName, 'Unregister-PSSessionConfiguration (changed configuration; restarts WinRM)')) {
                Unregister-PSSessionConfiguration -Name $EndpointName -Force
            }
        }
        if ($PSCmdlet.ShouldProcess($EndpointName, "Register-PSSessionConfiguration for $JeaGroup (restarts WinRM)")) {
            Register-PSSessionConfiguration -Name $EndpointName -Path $generated -Force | Out-Null
            if (-not (Test-Path -LiteralPath $StateFolder)) { New-Item -ItemType Directory -Path $StateFolder -Force | Out-Null }
            Copy-Item -LiteralPath $generated -Destination $RegisteredCopy -Force
        }
    }
}
finally {
    Remove-Item -LiteralPath $generated -Force -ErrorAction SilentlyContinue -WhatIf:$false
}

$fqdn = $env:COMPUTERNAME
try { $fqdn = [System.Net.Dns]::GetHostEntry([string]$env:COMPUTERNAME).HostName } catch { }
Write-Host @"

ndrbot JEA endpoint '$EndpointName' on $env:COMPUTERNAME - test it:

  # What a member of $JeaGroup can run (here, as admin; name the bot's account):
  Get-PSSessionCapability -ConfigurationName $EndpointName -Username 'DOMAIN\svc-ndrbot'

  # From another machine, as a member of $JeaGroup:
  Enter-PSSession -ComputerName $fqdn -ConfigurationName $EndpointName
  Get-Command            # expect Get-Service, Restart-Service, Test-NdrSmtpPort + 8 defaults
  Get-Service -Name MSExchangeTransport
  Test-NdrSmtpPort -RemoteHost contoso-com.mail.protection.outlook.com -Port 25
  Exit-PSSession

  ndrbot.yaml: kind jea, endpoints [https://${fqdn}:5986/wsman], configuration_name $EndpointName
  Transcripts: $transcripts
"@
