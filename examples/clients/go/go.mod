module cinemaabyss/events-service/examples/clients/go

go 1.22
